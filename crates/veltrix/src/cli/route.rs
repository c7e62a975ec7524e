//! `veltrix route list|describe`: the routes a broker runs, their lag and
//! what they have sorted, over the broker's HTTP API (`--http`). Routes are
//! declared in the configuration file (`[[route]]`), not made here.

use anyhow::bail;
use serde_json::Value;

use super::consume::Format;
use super::dlq::{Api, HttpArgs, text};
use super::{block_on, print_table};

#[derive(clap::Args, Debug)]
pub struct RouteArgs {
    #[command(subcommand)]
    command: RouteCommand,
}

#[derive(clap::Subcommand, Debug)]
enum RouteCommand {
    /// Lists the routes: source, rules, records in, errors, lag.
    List(HttpArgs),
    /// Shows one route: its rules, where its records went, each source
    /// partition's position and lag.
    Describe(DescribeArgs),
}

#[derive(clap::Args, Debug)]
struct DescribeArgs {
    /// The route's name.
    name: String,
    #[command(flatten)]
    http: HttpArgs,
}

pub fn run(args: RouteArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            RouteCommand::List(a) => list(a).await,
            RouteCommand::Describe(a) => describe(a).await,
        }
    })
}

fn lag(r: &Value) -> String {
    format!(
        "{} ({:.1} s)",
        text(&r["lag_records"]),
        r["lag_seconds"].as_f64().unwrap_or(0.0)
    )
}

async fn list(a: HttpArgs) -> anyhow::Result<()> {
    let answer = Api::new(&a)?.get("/api/v1/routes", &serde_json::Map::new()).await?;
    if a.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = answer["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                text(&r["spec"]["name"]),
                text(&r["spec"]["source"]),
                r["spec"]["rules"].as_array().map_or(0, Vec::len).to_string(),
                text(&r["counts"]["records_in"]),
                text(&r["counts"]["errors"]),
                text(&r["counts"]["unmatched"]),
                lag(r),
            ]
        })
        .collect();
    print_table(&["ROUTE", "SOURCE", "RULES", "IN", "ERRORS", "UNMATCHED", "LAG"], &rows);
    Ok(())
}

async fn describe(a: DescribeArgs) -> anyhow::Result<()> {
    let answer = Api::new(&a.http)?
        .get(&format!("/api/v1/routes/{}", a.name), &serde_json::Map::new())
        .await?;
    if a.http.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let spec = &answer["spec"];
    let Some(rules) = spec["rules"].as_array() else {
        bail!("the broker's answer has no rules");
    };
    println!("route {} from {}", text(&spec["name"]), text(&spec["source"]));
    for (i, r) in rules.iter().enumerate() {
        let to: Vec<String> = r["to"].as_array().into_iter().flatten().map(text).collect();
        println!("  rule {}: when {} -> {}", i + 1, text(&r["when"]), to.join(", "));
    }
    let default: Vec<String> = spec["default"].as_array().into_iter().flatten().map(text).collect();
    let default = if default.is_empty() {
        "(dropped, counted as unmatched)".to_owned()
    } else {
        default.join(", ")
    };
    println!("  otherwise -> {default}");
    println!("  dead letters -> {}", text(&spec["dead_letter"]));
    let c = &answer["counts"];
    println!(
        "records in {}, errors {}, unmatched {}; lag {}",
        text(&c["records_in"]),
        text(&c["errors"]),
        text(&c["unmatched"]),
        lag(&answer)
    );
    let out: Vec<Vec<String>> = c["out"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(t, n)| vec![t.clone(), text(n)])
        .collect();
    print_table(&["TARGET", "RECORDS"], &out);
    let partitions: Vec<Vec<String>> = answer["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| vec![text(&p["partition"]), text(&p["next"]), text(&p["end"]), lag(p)])
        .collect();
    print_table(&["PARTITION", "NEXT", "END", "LAG"], &partitions);
    Ok(())
}
