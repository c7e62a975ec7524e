//! `veltrix check [FILE]`: validates a configuration file without starting
//! anything, and `veltrix explain [RULE]`: the rule catalogue.
//!
//! `check` prints every diagnostic (rustc's layout, or JSON with `--format
//! json`) and a summary line, and exits with status 0 when there is no error
//! and 1 when there is one; with `--strict` warnings count as errors. The
//! environment's `VELTRIX_<TABLE>__<KEY>` overrides are applied, as `serve`
//! would. With `--online`, what the file names is contacted too
//! ([`super::check_online`]); without it, nothing is.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use veltrix_config::VeltrixConfig;
use veltrix_config::rules::{self, RuleProfile};
use veltrix_core::Broker;

/// Arguments of `veltrix check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The configuration file.
    #[arg(default_value = "veltrix.toml")]
    pub file: PathBuf,
    /// Fail (exit status 1) on warnings too.
    #[arg(long)]
    pub strict: bool,
    /// Output format: `text` (rustc-style diagnostics) or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    /// Also contact what the file names, read-only: in shared storage mode,
    /// PostgreSQL and the bucket (within their configured timeouts).
    /// Without it, nothing is contacted.
    #[arg(long)]
    pub online: bool,
}

/// Arguments of `veltrix explain`.
#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// A rule id (`V108`) or name (`retention-under-alert-horizon`); without
    /// it, the whole catalogue is listed.
    pub rule: Option<String>,
}

/// Runs `veltrix check` and exits with its status.
pub fn run_check(args: CheckArgs) -> anyhow::Result<()> {
    let mut report = match veltrix_config::check_file(&args.file) {
        Ok(report) => report,
        Err(e) => {
            let e = anyhow::Error::new(e).context(format!("cannot read {}", args.file.display()));
            if args.format == "json" {
                // Whatever went wrong, `--format json` prints JSON.
                println!(
                    "{}",
                    serde_json::to_string_pretty(&failure_json(&args.file, &e, "diagnostics"))?
                );
            }
            return Err(e);
        }
    };
    if args.online
        && let Err(why) = super::check_online::probe(&mut report, &veltrix_config::process_env())
    {
        eprintln!("--online: {why}");
    }
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.render(std::io::stdout().is_terminal()));
    }
    std::process::exit(report.exit_code(args.strict));
}

/// What `--format json` prints when a file could not be checked at all: the
/// shape of a report, with the reason in `error` and an empty `list`
/// (`diagnostics` for check, `findings` for doctor).
pub fn failure_json(file: &Path, e: &anyhow::Error, list: &str) -> serde_json::Value {
    let mut v = serde_json::json!({
        "file": file.display().to_string(),
        "error": super::error_chain(e),
        "errors": 1,
        "warnings": 0,
    });
    v[list] = serde_json::json!([]);
    v
}

/// Runs `veltrix explain`.
pub fn run_explain(args: ExplainArgs) -> anyhow::Result<()> {
    let Some(wanted) = args.rule else {
        print!("{}", catalogue());
        return Ok(());
    };
    let Some(rule) = rules::find(&wanted) else {
        let names: Vec<&str> = rules::CATALOGUE.iter().map(|r| r.name).collect();
        let hint = names
            .iter()
            .map(|n| (strsim_like(&wanted, n), *n))
            .max_by_key(|(score, _)| *score)
            .filter(|(score, _)| *score > 0)
            .map(|(_, n)| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        anyhow::bail!("no rule `{wanted}`{hint} (`veltrix explain` lists them)");
    };
    print!("{}", explanation(rule));
    Ok(())
}

/// `veltrix serve` flags that override the configuration file.
#[derive(Debug, Default)]
pub struct ServeOverrides {
    pub data_dir: Option<PathBuf>,
    pub kafka_listener: Option<SocketAddr>,
    pub http_listener: Option<SocketAddr>,
    /// `--auto-create-topics`: turns auto-creation on whatever the file says.
    pub auto_create_topics: bool,
    pub default_partitions: Option<u32>,
    /// `--allow-data-loss`: shorter retentions and removed topics are applied.
    pub allow_data_loss: bool,
}

/// The configuration `veltrix serve` runs with: the file's, checked exactly
/// as `veltrix check` does (environment overrides included), or the embedded
/// default without a file; then the flags over it. Warnings are printed and
/// the broker starts; errors are printed and it does not. With it, what
/// `veltrix check` said as JSON, for the console (`file` null without one).
pub fn serve_config(file: Option<&Path>, flags: ServeOverrides) -> anyhow::Result<(VeltrixConfig, serde_json::Value)> {
    // Without a file the embedded default is an empty file: the environment's
    // overrides still apply and are checked, so a bad value never starts silently.
    let report = match file {
        None => veltrix_config::check_source(
            "the embedded default configuration",
            "",
            &veltrix_config::process_env(),
            &veltrix_config::SystemProbe,
        ),
        Some(path) => veltrix_config::check_file(path).with_context(|| format!("cannot read {}", path.display()))?,
    };
    if !report.diagnostics.is_empty() {
        eprint!("{}", report.render(std::io::stderr().is_terminal()));
    }
    let mut check = report.to_json();
    if file.is_none() {
        check["file"] = serde_json::Value::Null;
    }
    let Some(mut config) = report.config.clone() else {
        let errors = super::plural(report.errors() as u64, "error");
        match file {
            None => anyhow::bail!("refusing to start: the VELTRIX_ environment overrides have {errors}"),
            Some(path) => anyhow::bail!(
                "refusing to start: {} has {errors} (`veltrix check {}` lists them)",
                path.display(),
                path.display()
            ),
        }
    };
    if let Some(dir) = flags.data_dir {
        // The same path rules as the file's, before anything is created.
        if let Some(why) = veltrix_config::data_dir_refusal(&dir, &veltrix_config::SystemProbe) {
            anyhow::bail!("refusing to start: --data-dir: {why}");
        }
        config.data_dir = dir;
    }
    if let Some(addr) = flags.kafka_listener {
        config.kafka_listener = addr;
    }
    if let Some(addr) = flags.http_listener {
        config.http_listener = addr;
    }
    if flags.auto_create_topics {
        config.broker.auto_create_topics = true;
    }
    if let Some(n) = flags.default_partitions {
        config.broker.default_partitions = n;
    }
    // A change the data directory's topics would refuse is told at the
    // file's line, before the directory is opened or created.
    if let Some(path) = file
        && let Err(e) = veltrix_config::preflight_topics(&config.data_dir, &config, flags.allow_data_loss)
    {
        let Some(d) = report.refusal(&e) else {
            return Err(anyhow::Error::new(e).context("refusing to start"));
        };
        eprintln!(
            "{}",
            d.render(&report.path, &report.source, std::io::stderr().is_terminal())
        );
        anyhow::bail!(
            "refusing to start: {} cannot be applied to the data directory {} ({} above)",
            path.display(),
            config.data_dir.display(),
            d.id()
        );
    }
    Ok((config, check))
}

/// Makes the broker's topics match the declared ones, runs the declared
/// routes, sets the declared quotas, then gives the declared share groups
/// their settings, and logs what changed. On a refusal
/// the broker is closed cleanly before the error is returned.
pub fn apply_declared(broker: &Broker, config: &VeltrixConfig, allow_data_loss: bool) -> anyhow::Result<()> {
    let refused = |e: veltrix_config::ApplyError, what: &str| {
        broker.close();
        anyhow::Error::new(e).context(format!("refusing to start: the declared {what} cannot be applied"))
    };
    let applied = veltrix_config::apply_topics(broker, config, allow_data_loss).map_err(|e| refused(e, "topics"))?;
    for name in &applied.created {
        tracing::info!(topic = %name, "created declared topic");
    }
    for (name, partitions) in &applied.grown {
        tracing::info!(topic = %name, partitions, "grew declared topic");
    }
    for name in &applied.altered {
        tracing::info!(topic = %name, "updated declared topic's settings");
    }
    for name in &applied.deleted {
        tracing::warn!(topic = %name, "deleted topic no longer declared");
    }
    // Every declared route, none included: a route no longer declared stops
    // and its progress is forgotten.
    if let Err(e) = broker.apply_routes(config.routes.clone()) {
        broker.close();
        return Err(anyhow::Error::new(e).context("refusing to start: the declared routes cannot be applied"));
    }
    let applied = veltrix_config::apply_quotas(broker, config).map_err(|e| refused(e, "quotas"))?;
    for entity in &applied.set {
        tracing::info!(%entity, "set declared quota");
    }
    for entity in &applied.removed {
        tracing::info!(%entity, "removed quota no longer declared");
    }
    let applied = veltrix_config::apply_share_groups(broker, config).map_err(|e| refused(e, "share groups"))?;
    for name in &applied.created {
        tracing::info!(group = %name, "created declared share group");
    }
    for name in &applied.updated {
        tracing::info!(group = %name, "set declared share group's settings");
    }
    for name in &applied.reset {
        tracing::info!(group = %name, "share group no longer declared: back to the [share] settings");
    }
    Ok(())
}

/// Words in common between a query and a rule name, for a suggestion.
fn strsim_like(query: &str, name: &str) -> usize {
    let query = query.to_ascii_lowercase();
    query
        .split(['-', '_', ' '])
        .filter(|w| w.len() > 2 && name.split('-').any(|n| n == *w))
        .count()
}

/// The catalogue, one rule a line.
fn catalogue() -> String {
    let mut out = String::new();
    for r in rules::CATALOGUE {
        let profile = match r.applies {
            RuleProfile::Always => "",
            RuleProfile::Production => " (production)",
        };
        out.push_str(&format!(
            "{}  {:<8} {:<44} {}{profile}\n",
            r.id,
            r.severity.name(),
            r.name,
            r.summary
        ));
    }
    out.push_str("\n`veltrix explain RULE` explains one rule (by id or name).\n");
    out
}

/// One rule's explanation.
fn explanation(rule: &rules::Rule) -> String {
    let profile = match rule.applies {
        RuleProfile::Always => "every profile",
        RuleProfile::Production => "production profile",
    };
    format!(
        "{} {} ({}, {profile})\n\n{}.\n\n{}\n",
        rule.id,
        rule.name,
        rule.severity.name(),
        capitalise(rule.summary),
        rule.explanation
    )
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_lists_every_rule_once() {
        let listed = catalogue();
        for r in rules::CATALOGUE {
            assert_eq!(listed.matches(r.id).count(), 1, "{}", r.id);
        }
    }

    #[test]
    fn an_explanation_names_the_rule_and_its_profile() {
        let text = explanation(rules::find("V202").unwrap());
        assert!(
            text.starts_with("V202 auto-create-topics (warning, production profile)\n\nTopic auto-creation is on.\n")
        );
    }

    #[test]
    fn names_sharing_words_are_suggested() {
        assert!(strsim_like("auto-create", "auto-create-topics") > 0);
        assert_eq!(strsim_like("zzz", "auto-create-topics"), 0);
    }
}
