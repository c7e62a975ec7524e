//! `veltrix user add|list|delete`: SCRAM users of a running broker, over
//! AlterUserScramCredentials and DescribeUserScramCredentials. The password
//! is read from stdin or a file, never from the command line (where `ps` and
//! the shell's history would keep it); the salted password is computed here,
//! so the password itself never leaves this process.

use std::io::Read;

use anyhow::{Context, bail};
use veltrix_client::{ClientError, ScramUpsert};
use veltrix_core::auth::{ITERATIONS_MAX, ITERATIONS_MIN, ScramMechanism};

use super::{ConnectArgs, block_on, print_table};

/// The salt's length: as Kafka's tools make them, 32 random bytes.
const SALT_BYTES: usize = 32;

/// Kafka's RESOURCE_NOT_FOUND: a user named that has no credentials.
const RESOURCE_NOT_FOUND: i16 = 91;

/// Passwords longer than this are refused (a file given by mistake).
const PASSWORD_BYTES_MAX: usize = 1024;

#[derive(clap::Args, Debug)]
pub struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(clap::Subcommand, Debug)]
enum UserCommand {
    /// Sets a user's SCRAM credentials (a new user, or a new password).
    Add(AddArgs),
    /// Lists users and their mechanisms and iterations.
    List(ListArgs),
    /// Deletes a user's credentials.
    Delete(DeleteArgs),
}

#[derive(clap::Args, Debug)]
struct AddArgs {
    /// The user's name.
    name: String,
    /// Read the password from the first line of stdin.
    #[arg(long, conflicts_with = "password_file", required_unless_present = "password_file")]
    password_stdin: bool,
    /// Read the password from the first line of this file.
    #[arg(long)]
    password_file: Option<std::path::PathBuf>,
    /// Mechanisms to set credentials for: SCRAM-SHA-512, SCRAM-SHA-256 (both
    /// by default).
    #[arg(long = "mechanism")]
    mechanisms: Vec<String>,
    /// PBKDF2 iterations (4096 to 16384).
    #[arg(long, default_value_t = 8192)]
    iterations: u32,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(clap::Args, Debug)]
struct ListArgs {
    /// Users to show (all when none is named).
    names: Vec<String>,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(clap::Args, Debug)]
struct DeleteArgs {
    /// The user's name.
    name: String,
    /// Mechanisms whose credentials to delete (all by default).
    #[arg(long = "mechanism")]
    mechanisms: Vec<String>,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub fn run(args: UserArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            UserCommand::Add(a) => add(a).await,
            UserCommand::List(a) => list(a).await,
            UserCommand::Delete(a) => delete(a).await,
        }
    })
}

/// The mechanisms named, or both.
fn mechanisms(names: &[String]) -> anyhow::Result<Vec<ScramMechanism>> {
    if names.is_empty() {
        return Ok(vec![ScramMechanism::Sha512, ScramMechanism::Sha256]);
    }
    names
        .iter()
        .map(|n| {
            ScramMechanism::from_name(n)
                .with_context(|| format!("`{n}` is not a SCRAM mechanism: use SCRAM-SHA-512 or SCRAM-SHA-256"))
        })
        .collect()
}

/// A password file other users can read (or write) is refused: whoever
/// reads it can act as the user, a super user as likely as not.
fn private(path: &std::path::Path, file: &std::fs::File) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file
        .metadata()
        .with_context(|| format!("reading {}'s permissions", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} is open to other users (mode {:03o}): `chmod 600 {}`, or pass the password on stdin",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
}

/// The password: the first line of stdin or of the file, without its end.
fn password(a: &AddArgs) -> anyhow::Result<String> {
    let mut raw = String::new();
    match &a.password_file {
        Some(path) => {
            let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            private(path, &file)?;
            file.take(PASSWORD_BYTES_MAX as u64 + 2)
                .read_to_string(&mut raw)
                .with_context(|| format!("reading {}", path.display()))?;
        }
        None => {
            std::io::stdin()
                .take(PASSWORD_BYTES_MAX as u64 + 2)
                .read_to_string(&mut raw)
                .context("reading the password from stdin")?;
        }
    }
    let line = raw.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        bail!("the password is empty");
    }
    if line.len() > PASSWORD_BYTES_MAX {
        bail!("the password is longer than {PASSWORD_BYTES_MAX} bytes");
    }
    Ok(line)
}

async fn add(a: AddArgs) -> anyhow::Result<()> {
    if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&a.iterations) {
        bail!("--iterations must be {ITERATIONS_MIN} to {ITERATIONS_MAX}");
    }
    let password = password(&a)?;
    let upserts: Vec<ScramUpsert> = mechanisms(&a.mechanisms)?
        .into_iter()
        .map(|m| {
            let salt: [u8; SALT_BYTES] = rand::random();
            ScramUpsert {
                user: a.name.clone(),
                mechanism: m.code(),
                iterations: i32::try_from(a.iterations).unwrap_or(i32::MAX),
                salted_password: m.salted_password(password.as_bytes(), &salt, a.iterations),
                salt: salt.to_vec(),
            }
        })
        .collect();
    let mut client = a.connect.connect().await?;
    for (user, error) in client.alter_user_credentials(&upserts, &[]).await? {
        if let Some(e) = error {
            bail!("setting the credentials of `{user}`: {e}");
        }
    }
    let names: Vec<&str> = upserts
        .iter()
        .map(|u| ScramMechanism::from_code(u.mechanism).map_or("", |m| m.name()))
        .collect();
    println!("user `{}` set for {}", a.name, names.join(", "));
    Ok(())
}

async fn list(a: ListArgs) -> anyhow::Result<()> {
    let mut client = a.connect.connect().await?;
    let names: Vec<&str> = a.names.iter().map(String::as_str).collect();
    let users = client
        .describe_user_credentials((!names.is_empty()).then_some(names.as_slice()))
        .await?;
    let rows: Vec<Vec<String>> = users
        .iter()
        .flat_map(|u| {
            u.credentials.iter().map(|(m, i)| {
                let name =
                    ScramMechanism::from_code(*m).map_or_else(|| format!("mechanism {m}"), |m| m.name().to_owned());
                vec![u.user.clone(), name, i.to_string()]
            })
        })
        .collect();
    print_table(&["USER", "MECHANISM", "ITERATIONS"], &rows);
    Ok(())
}

async fn delete(a: DeleteArgs) -> anyhow::Result<()> {
    let mut client = a.connect.connect().await?;
    let explicit = !a.mechanisms.is_empty();
    let mut wanted = mechanisms(&a.mechanisms)?;
    if !explicit {
        // Only those the user has: deleting a missing one is an error.
        let users = match client.describe_user_credentials(Some(&[a.name.as_str()])).await {
            Ok(users) => users,
            // RESOURCE_NOT_FOUND: no credentials at all.
            Err(ClientError::Kafka { error, .. }) if error.code == RESOURCE_NOT_FOUND => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let has: Vec<i8> = users
            .iter()
            .flat_map(|u| u.credentials.iter().map(|(m, _)| *m))
            .collect();
        wanted.retain(|m| has.contains(&m.code()));
        if wanted.is_empty() {
            bail!("user `{}` has no credentials", a.name);
        }
    }
    let deletions: Vec<(String, i8)> = wanted.iter().map(|m| (a.name.clone(), m.code())).collect();
    for (user, error) in client.alter_user_credentials(&[], &deletions).await? {
        if let Some(e) = error {
            bail!("deleting the credentials of `{user}`: {e}");
        }
    }
    println!("user `{}` deleted", a.name);
    Ok(())
}
