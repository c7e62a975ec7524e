//! `veltrix acl add|list|delete`: Kafka ACLs of a running broker, over
//! CreateAcls, DescribeAcls and DeleteAcls, named as Kafka's `kafka-acls`
//! names them (`--allow-principal` becomes `--principal` with `--allow` or
//! `--deny`). The broker answers SECURITY_DISABLED while `[security]
//! authorization` is off.

use anyhow::{Context, bail};
use veltrix_client::{Acl, AclFilter};
use veltrix_core::acl::{AclOperation, AclPermissionType, CLUSTER_NAME, PatternType, ResourceType};

use super::{ConnectArgs, block_on, print_table};

#[derive(clap::Args, Debug)]
pub struct AclArgs {
    #[command(subcommand)]
    command: AclCommand,
}

#[derive(clap::Subcommand, Debug)]
enum AclCommand {
    /// Adds ACLs: each operation given, for the principal, on the resource.
    Add(AddArgs),
    /// Lists the ACLs matching the options (all without any).
    List(FilterArgs),
    /// Deletes the ACLs matching the options.
    Delete(DeleteArgs),
}

/// The resource an ACL is about: exactly one of these.
#[derive(clap::Args, Debug, Clone, Default)]
struct ResourceArgs {
    #[arg(long, conflicts_with_all = ["group", "cluster", "transactional_id"])]
    topic: Option<String>,
    #[arg(long, conflicts_with_all = ["cluster", "transactional_id"])]
    group: Option<String>,
    /// The cluster (CREATE topics, ALTER ACLs and users, DESCRIBE ...).
    #[arg(long, conflicts_with = "transactional_id")]
    cluster: bool,
    #[arg(long)]
    transactional_id: Option<String>,
    /// The name is a prefix: the ACL covers every resource whose name starts
    /// with it.
    #[arg(long)]
    prefixed: bool,
}

impl ResourceArgs {
    fn resource(&self) -> Option<(ResourceType, String)> {
        if let Some(t) = &self.topic {
            return Some((ResourceType::Topic, t.clone()));
        }
        if let Some(g) = &self.group {
            return Some((ResourceType::Group, g.clone()));
        }
        if let Some(t) = &self.transactional_id {
            return Some((ResourceType::TransactionalId, t.clone()));
        }
        self.cluster.then(|| (ResourceType::Cluster, CLUSTER_NAME.to_owned()))
    }

    fn pattern(&self) -> PatternType {
        if self.prefixed {
            PatternType::Prefixed
        } else {
            PatternType::Literal
        }
    }
}

#[derive(clap::Args, Debug)]
struct AddArgs {
    /// Who: `User:alice` (`User:*` for every principal).
    #[arg(long)]
    principal: String,
    /// From which client address (`*`: any).
    #[arg(long, default_value = "*")]
    host: String,
    /// Allow the operations (the default).
    #[arg(long, conflicts_with = "deny")]
    allow: bool,
    /// Deny them: a DENY wins over any ALLOW.
    #[arg(long)]
    deny: bool,
    /// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS,
    /// ALTER_CONFIGS, IDEMPOTENT_WRITE, CLUSTER_ACTION or ALL; repeatable.
    #[arg(long = "operation", required = true)]
    operations: Vec<String>,
    #[command(flatten)]
    resource: ResourceArgs,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(clap::Args, Debug)]
struct FilterArgs {
    #[arg(long)]
    principal: Option<String>,
    #[arg(long)]
    host: Option<String>,
    #[arg(long)]
    operation: Option<String>,
    #[command(flatten)]
    resource: ResourceArgs,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(clap::Args, Debug)]
struct DeleteArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Needed to delete without naming a principal or a resource: every ACL.
    #[arg(long)]
    all: bool,
}

pub fn run(args: AclArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            AclCommand::Add(a) => add(a).await,
            AclCommand::List(a) => list(a).await,
            AclCommand::Delete(a) => delete(a).await,
        }
    })
}

fn operation(name: &str) -> anyhow::Result<AclOperation> {
    name.parse::<AclOperation>().map_err(|e| anyhow::anyhow!("{e}"))
}

async fn add(a: AddArgs) -> anyhow::Result<()> {
    let (resource_type, resource_name) = a
        .resource
        .resource()
        .context("name the resource: --topic, --group, --cluster or --transactional-id")?;
    let permission = if a.deny {
        AclPermissionType::Deny
    } else {
        AclPermissionType::Allow
    };
    let acls = a
        .operations
        .iter()
        .map(|o| {
            Ok(Acl {
                resource_type: resource_type.code(),
                resource_name: resource_name.clone(),
                pattern_type: a.resource.pattern().code(),
                principal: a.principal.clone(),
                host: a.host.clone(),
                operation: operation(o)?.code(),
                permission: permission.code(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut client = a.connect.connect().await?;
    let results = client.create_acls(&acls).await?;
    for (acl, error) in acls.iter().zip(results) {
        if let Some(e) = error {
            bail!("adding {}: {e}", describe(acl));
        }
        println!("added {}", describe(acl));
    }
    Ok(())
}

fn filter(a: &FilterArgs) -> anyhow::Result<AclFilter> {
    let (resource_type, resource_name) = match a.resource.resource() {
        Some((t, n)) => (t, Some(n)),
        None => (ResourceType::Any, None),
    };
    let pattern = match (&resource_name, a.resource.prefixed) {
        (None, _) => PatternType::Any,
        (Some(_), true) => PatternType::Prefixed,
        (Some(_), false) => PatternType::Literal,
    };
    Ok(AclFilter {
        resource_type: resource_type.code(),
        resource_name,
        pattern_type: pattern.code(),
        principal: a.principal.clone(),
        host: a.host.clone(),
        operation: a.operation.as_deref().map_or(Ok(AclOperation::Any), operation)?.code(),
        permission: AclPermissionType::Any.code(),
    })
}

/// One ACL in words.
fn describe(acl: &Acl) -> String {
    let name = |code, f: fn(i8) -> Option<String>| f(code).unwrap_or_else(|| format!("({code})"));
    format!(
        "{} {} {} on {} `{}` ({}) from {}",
        name(acl.permission, |c| AclPermissionType::from_code(c)
            .map(|p| p.to_string())),
        acl.principal,
        name(acl.operation, |c| AclOperation::from_code(c).map(|o| o.to_string())),
        name(acl.resource_type, |c| ResourceType::from_code(c).map(|r| r.to_string())),
        acl.resource_name,
        name(acl.pattern_type, |c| PatternType::from_code(c).map(|p| p.to_string())),
        acl.host,
    )
}

fn rows(acls: &[Acl]) -> Vec<Vec<String>> {
    let n = |s: Option<String>, code: i8| s.unwrap_or_else(|| format!("({code})"));
    acls.iter()
        .map(|a| {
            vec![
                a.principal.clone(),
                n(
                    AclPermissionType::from_code(a.permission).map(|p| p.to_string()),
                    a.permission,
                ),
                n(AclOperation::from_code(a.operation).map(|p| p.to_string()), a.operation),
                n(
                    ResourceType::from_code(a.resource_type).map(|p| p.to_string()),
                    a.resource_type,
                ),
                a.resource_name.clone(),
                n(
                    PatternType::from_code(a.pattern_type).map(|p| p.to_string()),
                    a.pattern_type,
                ),
                a.host.clone(),
            ]
        })
        .collect()
}

const HEADER: [&str; 7] = [
    "PRINCIPAL",
    "PERMISSION",
    "OPERATION",
    "RESOURCE",
    "NAME",
    "PATTERN",
    "HOST",
];

async fn list(a: FilterArgs) -> anyhow::Result<()> {
    let f = filter(&a)?;
    let mut client = a.connect.connect().await?;
    let acls = client.describe_acls(&f).await?;
    print_table(&HEADER, &rows(&acls));
    Ok(())
}

async fn delete(a: DeleteArgs) -> anyhow::Result<()> {
    if !a.all && a.filter.principal.is_none() && a.filter.resource.resource().is_none() {
        bail!("name a principal or a resource, or pass --all to delete every ACL");
    }
    let f = filter(&a.filter)?;
    let mut client = a.filter.connect.connect().await?;
    let removed = client.delete_acls(&[f]).await?;
    let all: Vec<Acl> = removed.into_iter().flatten().collect();
    print_table(&HEADER, &rows(&all));
    eprintln!("{} deleted", super::plural(all.len() as u64, "ACL"));
    Ok(())
}
