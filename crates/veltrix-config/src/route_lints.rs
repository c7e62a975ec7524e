//! The rules of `[[route]]` entries (V025 to V030, V141 to V143): names and
//! their count, the shape of each route against the engine's limits, each
//! rule's `when` compiled with its errors placed at their line and column in
//! the file, the topics a route reads and writes, cycles between routes, and
//! records sent to a topic of a lower tier.

use std::collections::HashSet;
use std::ops::Range;

use veltrix_core::Tier;
use veltrix_core::routes::expr::VARIABLES;
use veltrix_core::routes::{
    Expr, ExprError, HEADERS_MAX, ROUTES_MAX, RULES_MAX, RouteSpec, RuleSpec, TARGETS_MAX, find_cycle,
};

use crate::check::Ctx;
use crate::lints::{declared_twice, shown};
use crate::model::VeltrixConfig;
use crate::raw::{self, Origin, Raw, RawTable};
use crate::rules;
use crate::schema::ROUTE_NAME_CHARS_MAX;

/// The dead-letter topic of the route `route` when its entry names none.
pub fn default_dead_letter(route: &str) -> String {
    format!("{route}.dead-letters")
}

/// A `[[route]]` as the engine takes it; `None` when a key it needs is
/// missing or was rejected (the configuration is withheld then anyway).
pub(crate) fn resolve(t: &RawTable) -> Option<RouteSpec> {
    let topics = |items: &[(String, Range<usize>)]| items.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let name = t.str("name")?.to_owned();
    let rules = t
        .tables("rule")
        .iter()
        .map(|r| {
            Some(RuleSpec {
                when: r.str("when")?.to_owned(),
                to: topics(r.list("to")?),
                headers: r.map("headers").map(<[_]>::to_vec).unwrap_or_default(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(RouteSpec {
        source: t.str("source")?.to_owned(),
        rules,
        default: t.list("default").map(topics).unwrap_or_default(),
        dead_letter: t
            .str("dead_letter")
            .map_or_else(|| default_dead_letter(&name), str::to_owned),
        name,
    })
}

/// Every route rule; they apply under every profile.
pub(crate) fn run(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    names(ctx, raw);
    count(ctx, raw);
    for r in &raw.routes {
        shape(ctx, r);
        expressions(ctx, r);
    }
    topics(ctx, raw);
    cycle(ctx, raw, c);
    tiers(ctx, raw, c);
}

/// "route `name`" as diagnostics say it.
fn what(r: &RawTable) -> String {
    match r.str("name") {
        Some(name) => format!("route `{}`", shown(name)),
        None => "the route".to_owned(),
    }
}

/// Where an entry is: its header.
fn header(t: &RawTable) -> Option<Origin> {
    t.header.clone().map(Origin::File)
}

/// What is wrong with a route's name, if anything (an empty one is V004's).
fn name_problem(name: &str) -> Option<String> {
    let chars = name.chars().count();
    if chars > ROUTE_NAME_CHARS_MAX {
        return Some(format!("{chars} characters long; at most {ROUTE_NAME_CHARS_MAX}"));
    }
    let bad = name
        .chars()
        .find(|ch| !(ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-')))?;
    Some(format!(
        "`{}` is not allowed: ASCII letters, digits, `.`, `_` and `-` only",
        bad.escape_debug()
    ))
}

/// V025 and V026: names the broker refuses, and names declared twice.
fn names(ctx: &mut Ctx<'_>, raw: &Raw) {
    for r in &raw.routes {
        let (Some(name), Some(at)) = (r.str("name"), r.set_at("name")) else {
            continue;
        };
        let Some(reason) = name_problem(name) else {
            continue;
        };
        let cleaned: String = name
            .trim()
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-') {
                    ch
                } else {
                    '-'
                }
            })
            .take(ROUTE_NAME_CHARS_MAX)
            .collect();
        let help = if cleaned.is_empty() {
            format!("use 1 to {ROUTE_NAME_CHARS_MAX} ASCII letters, digits, `.`, `_` or `-`")
        } else {
            format!("rename it, for example `name = \"{cleaned}\"`")
        };
        ctx.emit(
            &rules::INVALID_ROUTE_NAME,
            Some(&at),
            format!("invalid route name `{}`", shown(name)),
        )
        .label(reason)
        .help(help)
        .note("the name keys the route's progress and makes its default dead-letter topic, `<name>.dead-letters`");
    }
    declared_twice(ctx, &raw.routes, &rules::DUPLICATE_ROUTE, "route");
}

/// V030: more routes than the broker runs.
fn count(ctx: &mut Ctx<'_>, raw: &Raw) {
    let mut seen = HashSet::new();
    let unique: Vec<&RawTable> = raw
        .routes
        .iter()
        .filter(|r| r.str("name").is_some_and(|n| seen.insert(n)))
        .collect();
    let Some(past) = unique.get(ROUTES_MAX) else {
        return;
    };
    ctx.emit(
        &rules::ROUTE_OVER_LIMITS,
        past.set_at("name").as_ref(),
        format!(
            "{} routes are declared; the broker runs at most {ROUTES_MAX}",
            unique.len()
        ),
    )
    .label("this route is past the limit")
    .help("merge routes that read the same source into one, with more rules")
    .note("the broker refuses the routes, so it would not start");
}

/// V028, V029, V030: a route that routes nothing, a rule without a target,
/// and the engine's limits on rules, targets and headers.
fn shape(ctx: &mut Ctx<'_>, r: &RawTable) {
    let rules = r.tables("rule");
    let default = r.list("default").unwrap_or_default();
    let undecided = r.rejected.contains("rule") || r.rejected.contains("default");
    if rules.is_empty() && default.is_empty() && !undecided {
        ctx.emit(
            &rules::ROUTE_ROUTES_NOTHING,
            header(r).as_ref(),
            format!("{} has no rule and no default target", what(r)),
        )
        .label("no `[[route.rule]]` and no `default`")
        .help("add a rule under it: `[[route.rule]]` with `when = '...'` and `to = \"TOPIC\"`, or `default = \"TOPIC\"` for every record")
        .note("a route with neither would read its source and write nothing; the broker refuses it");
    }
    if let Some(past) = rules.get(RULES_MAX) {
        ctx.emit(
            &rules::ROUTE_OVER_LIMITS,
            header(past).as_ref(),
            format!("{} has {} rules; at most {RULES_MAX}", what(r), rules.len()),
        )
        .label("this rule is past the limit")
        .help("join conditions that send records to the same topics with `||`, or split the route")
        .note("every rule is tried in order for each record until one holds; the broker refuses the route");
    }
    if default.len() > TARGETS_MAX {
        over_limit(ctx, r, "default", default.len(), TARGETS_MAX, "topics");
    }
    for rule in rules {
        let to = rule.list("to").unwrap_or_default();
        if to.is_empty() && rule.declares("to") && !rule.rejected.contains("to") {
            ctx.emit(
                &rules::RULE_WITHOUT_TARGET,
                rule.at("to").as_ref(),
                format!("a rule of {} sends its records nowhere", what(r)),
            )
            .label("`to` names no topic")
            .help("name the topic its records go to: `to = \"TOPIC\"` or `to = [\"TOPIC\", ...]`")
            .note("the first rule that holds wins, so its records would reach neither a later rule nor the default");
        }
        if to.len() > TARGETS_MAX {
            over_limit(ctx, rule, "to", to.len(), TARGETS_MAX, "topics");
        }
        let headers = rule.map("headers").map_or(0, <[_]>::len);
        if headers > HEADERS_MAX {
            over_limit(ctx, rule, "headers", headers, HEADERS_MAX, "headers");
        }
    }
}

fn over_limit(ctx: &mut Ctx<'_>, t: &RawTable, key: &str, n: usize, max: usize, what: &str) {
    ctx.emit(
        &rules::ROUTE_OVER_LIMITS,
        t.at(key).as_ref(),
        format!("`{key}` names {n} {what}; at most {max}"),
    )
    .label(format!("{n} {what}"))
    .help(format!("keep at most {max} {what} in `{key}`"))
    .note("each target is a write of every record sent there; the broker refuses the route");
}

/// V027: each rule's `when` compiled, every error placed in the file.
fn expressions(ctx: &mut Ctx<'_>, r: &RawTable) {
    for (i, rule) in r.tables("rule").iter().enumerate() {
        let (Some(when), Some(Origin::File(span))) = (rule.str("when"), rule.set_at("when")) else {
            continue;
        };
        let Err(errors) = Expr::compile(when) else {
            continue;
        };
        for e in errors {
            let at = place(ctx.source(), &span, when, e.line, e.column);
            let (label, help) = expr_fix(&e);
            let message = e.message.split("; ").next().unwrap_or(&e.message);
            ctx.emit(
                &rules::ROUTE_EXPRESSION,
                Some(&Origin::File(at)),
                format!("{}, rule {}: `when` does not compile: {message}", what(r), i + 1),
            )
            .label(label)
            .help(help)
            .note("a route whose expression does not compile cannot run; the broker would refuse to start");
        }
    }
}

/// The label and the fix of an expression's error.
fn expr_fix(e: &ExprError) -> (String, String) {
    let quoted = |m: &str| m.split('`').nth(1).map(str::to_owned);
    let variables = VARIABLES.map(|v| format!("`{v}`")).join(", ");
    if e.message.starts_with("unknown variable")
        && let Some(name) = quoted(&e.message)
    {
        let help = match raw::suggest(&name, &VARIABLES) {
            Some(v) => format!("did you mean `{v}`? a record has {variables}"),
            None => format!("a record has {variables}; a field of its JSON value is `value.{name}`"),
        };
        return ("unknown variable".to_owned(), help);
    }
    if e.message.starts_with("unknown function") {
        let help = match e.message.split_once("did you mean ") {
            Some((_, hint)) => format!("did you mean {hint}"),
            None => "use CEL's standard functions: `size`, `contains`, `startsWith`, `endsWith`, `matches`, `has`, `exists`, `all`, ...".to_owned(),
        };
        return ("unknown function".to_owned(), help);
    }
    if e.message.contains("is empty") {
        return (
            "an empty expression".to_owned(),
            "write a condition, such as `when = 'value.type == \"reward\"'`, or `when = 'true'` for every record"
                .to_owned(),
        );
    }
    if e.message.contains("bytes; at most") {
        return (
            "too long".to_owned(),
            "shorten the expression, or split it over several rules that send to the same topics".to_owned(),
        );
    }
    (
        "not valid CEL here".to_owned(),
        "write a CEL condition: `==` to compare, `&&` and `||` to combine, strings in double quotes inside a single-quoted TOML string: `when = 'value.type == \"reward\"'`".to_owned(),
    )
}

/// Where, in the file, the character at `line`:`column` (both from 1) of the
/// string `text`, written at `span`, is, as far as its word reaches (one
/// character if it is none). The whole string when the literal does not
/// read back to `text`, or the place is past its end.
fn place(source: &str, span: &Range<usize>, text: &str, line: usize, column: usize) -> Range<usize> {
    let Some((decoded, at)) = source.get(span.clone()).and_then(decode).filter(|(d, _)| d == text) else {
        return span.clone();
    };
    let chars: Vec<char> = decoded.chars().collect();
    let mut i = 0;
    for _ in 1..line {
        match chars[i..].iter().position(|&ch| ch == '\n') {
            Some(n) => i += n + 1,
            None => return span.clone(),
        }
    }
    let line_len = chars[i..].iter().position(|&ch| ch == '\n').unwrap_or(chars.len() - i);
    let start = i + (column.max(1) - 1).min(line_len.saturating_sub(1));
    if start >= chars.len() {
        return span.clone();
    }
    let word = |ch: char| ch.is_alphanumeric() || ch == '_';
    let end = if word(chars[start]) {
        start + chars[start..].iter().take_while(|&&ch| word(ch)).count()
    } else {
        start + 1
    };
    span.start + at[start].start..span.start + at[end - 1].end
}

/// A TOML string literal, `lit` as written (delimiters included), read back:
/// its text, and for each of its characters the bytes of `lit` it is written
/// with. `None` when `lit` is not a string literal.
fn decode(lit: &str) -> Option<(String, Vec<Range<usize>>)> {
    let delimiter = ["\"\"\"", "'''", "\"", "'"].into_iter().find(|d| lit.starts_with(d))?;
    let multi = delimiter.len() == 3;
    let basic = delimiter.starts_with('"');
    let end = lit.len().checked_sub(delimiter.len())?;
    if end < delimiter.len() || !lit.ends_with(delimiter) {
        return None;
    }
    let mut i = delimiter.len();
    // A line break right after the opening delimiter is not part of it.
    if multi {
        i += ["\r\n", "\n"]
            .into_iter()
            .find(|nl| lit[i..].starts_with(nl))
            .map_or(0, str::len);
    }
    let mut text = String::new();
    let mut at = Vec::new();
    while i < end {
        let ch = lit[i..].chars().next()?;
        if multi && lit[i..].starts_with("\r\n") {
            text.push('\n');
            at.push(i..i + 2);
            i += 2;
            continue;
        }
        if !(basic && ch == '\\') {
            text.push(ch);
            at.push(i..i + ch.len_utf8());
            i += ch.len_utf8();
            continue;
        }
        let rest = &lit[i + 1..end];
        let (decoded, len) = match rest.chars().next()? {
            'b' => ('\u{8}', 2),
            't' => ('\t', 2),
            'n' => ('\n', 2),
            'f' => ('\u{c}', 2),
            'r' => ('\r', 2),
            'e' => ('\u{1b}', 2),
            '"' => ('"', 2),
            '\\' => ('\\', 2),
            kind @ ('x' | 'u' | 'U') => {
                let digits = match kind {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let code = u32::from_str_radix(rest.get(1..1 + digits)?, 16).ok()?;
                (char::from_u32(code)?, 2 + digits)
            }
            // A line-ending backslash: the white space up to the next text
            // is left out, line breaks included.
            ' ' | '\t' | '\r' | '\n' if multi => {
                let kept = rest.trim_start_matches([' ', '\t', '\r', '\n']);
                i += 1 + rest.len() - kept.len();
                continue;
            }
            _ => return None,
        };
        text.push(decoded);
        at.push(i..i + len);
        i += len;
    }
    Some((text, at))
}

/// V141: topics a route reads or writes that are not declared.
fn topics(ctx: &mut Ctx<'_>, raw: &Raw) {
    let declared: Vec<&str> = raw.topics.iter().filter_map(|t| t.str("name")).collect();
    for r in &raw.routes {
        let route = what(r);
        let mut uses: Vec<(&str, Option<Origin>, String)> = Vec::new();
        if let Some(source) = r.str("source") {
            uses.push((source, r.set_at("source"), format!("{route} reads topic")));
        }
        for rule in r.tables("rule") {
            for (topic, span) in rule.list("to").unwrap_or_default() {
                uses.push((
                    topic,
                    Some(Origin::File(span.clone())),
                    format!("{route} writes to topic"),
                ));
            }
        }
        for (topic, span) in r.list("default").unwrap_or_default() {
            let what = format!("{route} sends unmatched records to topic");
            uses.push((topic, Some(Origin::File(span.clone())), what));
        }
        if let Some(dead_letter) = r.str("dead_letter") {
            let what = format!("{route} sends dead letters to topic");
            uses.push((dead_letter, r.set_at("dead_letter"), what));
        }
        for (topic, at, what) in uses {
            if declared.contains(&topic) {
                continue;
            }
            let help = match raw::suggest(topic, &declared) {
                Some(s) => format!("did you mean `\"{s}\"`? or declare it: `[[topic]]` with `name = \"{topic}\"`"),
                None => format!("declare it: `[[topic]]` with `name = \"{topic}\"`"),
            };
            ctx.emit(
                &rules::ROUTE_UNKNOWN_TOPIC,
                at.as_ref(),
                format!("{what} `{}`, which is not declared", shown(topic)),
            )
            .label("no `[[topic]]` has this name")
            .help(help)
            .note("the broker refuses a route whose topics do not exist; routes do not create topics");
        }
        default_dead_letter_declared(ctx, r, &declared);
    }
}

/// V141 for the dead-letter topic a route gets when it names none.
fn default_dead_letter_declared(ctx: &mut Ctx<'_>, r: &RawTable, declared: &[&str]) {
    let Some(name) = r.str("name").filter(|_| !r.declares("dead_letter")) else {
        return;
    };
    let topic = default_dead_letter(name);
    if declared.contains(&topic.as_str()) {
        return;
    }
    ctx.emit(
        &rules::ROUTE_UNKNOWN_TOPIC,
        r.at("name").as_ref(),
        format!("{}'s dead-letter topic `{}` is not declared", what(r), shown(&topic)),
    )
    .label(format!(
        "without `dead_letter`, records a rule fails on go to `{}`",
        shown(&topic)
    ))
    .help(format!(
        "declare it: `[[topic]]` with `name = \"{topic}\"`, or set `dead_letter` to a declared topic"
    ))
    .note("the broker refuses a route whose topics do not exist; routes do not create topics");
}

/// Where route `r` names `topic` as a target: a rule's `to`, its `default`,
/// its `dead_letter`, or its name for the default dead-letter topic.
fn target_at(r: &RawTable, topic: &str) -> Option<Origin> {
    let named = |items: Option<&[(String, Range<usize>)]>| {
        items
            .unwrap_or_default()
            .iter()
            .find(|(t, _)| t == topic)
            .map(|(_, span)| Origin::File(span.clone()))
    };
    r.tables("rule")
        .iter()
        .find_map(|rule| named(rule.list("to")))
        .or_else(|| named(r.list("default")))
        .or_else(|| r.set_at("dead_letter").filter(|_| r.str("dead_letter") == Some(topic)))
        .or_else(|| r.at("name"))
}

/// V142: routes that bring records back to a topic they read.
fn cycle(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    let Some(cycle) = find_cycle(&c.routes) else {
        return;
    };
    // Each step of the cycle: the route that takes records from one topic to
    // the next, and where the file says so.
    let steps: Vec<(&str, String, Option<Origin>)> = cycle
        .windows(2)
        .map(|pair| {
            let spec = c
                .routes
                .iter()
                .find(|s| s.source == pair[0] && s.targets().contains(&pair[1].as_str()));
            let name = spec.map_or("", |s| s.name.as_str());
            let at = raw
                .routes
                .iter()
                .find(|r| r.str("name") == Some(name))
                .and_then(|r| target_at(r, &pair[1]));
            let label = format!("route `{}` writes `{}` records to `{}`", shown(name), pair[0], pair[1]);
            (name, label, at)
        })
        .collect();
    let Some(((first, first_label, first_at), rest)) = steps.split_first() else {
        return;
    };
    let (message, help) = if rest.is_empty() {
        (
            format!("route `{}` writes to `{}`, the topic it reads", shown(first), cycle[0]),
            format!("send these records to another topic than `{}`", cycle[0]),
        )
    } else {
        (
            format!("routes make a cycle: {}", cycle.join(" -> ")),
            format!(
                "break the cycle at one step: take `{}` out of route `{}`'s targets, or change another step marked here",
                cycle[1],
                shown(first)
            ),
        )
    };
    let d = ctx.emit(&rules::ROUTE_CYCLE, first_at.as_ref(), message);
    d.label(first_label.clone());
    for (_, label, at) in rest {
        d.related(at.clone(), label.clone());
    }
    d.help(help)
        .note("records would go round for ever, each pass writing them again, until the disk is full; the broker refuses the routes");
}

/// A declared topic's tier, and where the file gives it.
fn tier_of(raw: &Raw, c: &VeltrixConfig, topic: &str) -> Option<(Tier, Option<Origin>)> {
    let declared = c.topic(topic)?;
    let tier = declared.config.tier.unwrap_or_default();
    let t = raw.topics.iter().find(|t| t.str("name") == Some(topic))?;
    let at = if t.bool("critical") == Some(true) {
        t.set_at("critical")
    } else {
        t.set_at("tier")
    };
    Some((tier, at))
}

/// V143: records sent to a topic of a lower tier than their source's. The
/// dead-letter topic is not compared.
fn tiers(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    for r in &raw.routes {
        let Some(source) = r.str("source") else {
            continue;
        };
        let Some((source_tier, source_at)) = tier_of(raw, c, source) else {
            continue;
        };
        // In file order, each target once, where it is first named.
        let mut targets: Vec<&(String, Range<usize>)> = r
            .tables("rule")
            .iter()
            .flat_map(|rule| rule.list("to").unwrap_or_default())
            .chain(r.list("default").unwrap_or_default())
            .collect();
        targets.sort_by_key(|(_, span)| span.start);
        let mut seen = HashSet::new();
        for (target, span) in targets {
            if !seen.insert(target.as_str()) {
                continue;
            }
            let Some((target_tier, target_at)) = tier_of(raw, c, target) else {
                continue;
            };
            if target_tier >= source_tier {
                continue;
            }
            let (from, to) = (source_tier.name(), target_tier.name());
            ctx.emit(
                &rules::ROUTE_LOWERS_TIER,
                Some(&Origin::File(span.clone())),
                format!(
                    "{} sends records of {from} topic `{source}` to {to} topic `{}`",
                    what(r),
                    shown(target)
                ),
            )
            .label(format!("a {to} topic: these records would lose their priority"))
            .related(source_at.clone(), format!("`{source}` is {from}"))
            .related(target_at, format!("`{}` is {to}", shown(target)))
            .help(format!(
                "give `{}` `tier = \"{from}\"`, or send these records to a {from} topic",
                shown(target)
            ))
            .note(format!("as the memory budget fills, {to} topics are throttled before {from} ones: the routed records would wait where their source's would not"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place_in(lit: &str, text: &str, line: usize, column: usize) -> String {
        let source = format!("when = {lit}\n");
        let span = 7..7 + lit.len();
        source[place(&source, &span, text, line, column)].to_owned()
    }

    #[test]
    fn literals_read_back_to_their_text() {
        assert_eq!(decode(r#""a\"b\\c""#).unwrap().0, "a\"b\\c");
        assert_eq!(decode(r#""\u00e9\t""#).unwrap().0, "\u{e9}\t");
        assert_eq!(decode("'a\\b'").unwrap().0, "a\\b");
        assert_eq!(decode("'''\nx\ny'''").unwrap().0, "x\ny");
        assert_eq!(decode("\"\"\"\r\nx\r\ny\"\"\"").unwrap().0, "x\ny");
        assert_eq!(decode("\"\"\"a \\\n   b\"\"\"").unwrap().0, "a b");
        assert_eq!(decode("x"), None);
    }

    #[test]
    fn a_place_in_the_expression_is_a_place_in_the_literal() {
        // After escapes, the word at the column is the one written.
        let lit = r#""key == \"a\" || startswith(key)""#;
        assert_eq!(place_in(lit, r#"key == "a" || startswith(key)"#, 1, 15), "startswith");
        assert_eq!(place_in("'record.type'", "record.type", 1, 1), "record");
        // An escape is the character it stands for.
        assert_eq!(place_in(r#""a\u0026b""#, "a&b", 1, 2), "\\u0026");
        // Lines of a multi-line string are lines of the file.
        let lit = "'''\nvalue.type == 1\n  && recrod'''";
        assert_eq!(place_in(lit, "value.type == 1\n  && recrod", 2, 6), "recrod");
        // Past the end of a line: its last character.
        assert_eq!(place_in("'a =='", "a ==", 1, 9), "=");
        // A literal that does not read back: the whole string.
        assert_eq!(place_in("'a'", "b", 1, 1), "'a'");
    }

    #[test]
    fn names_are_checked_like_short_topic_names() {
        assert_eq!(name_problem("by-type.v2_x"), None);
        assert!(name_problem("by type").unwrap().contains("` `"));
        assert!(name_problem(&"r".repeat(101)).unwrap().contains("101 characters"));
        assert_eq!(name_problem(&"r".repeat(100)), None);
    }

    /// The functions the help and the explanation name are the engine's.
    #[test]
    fn the_functions_named_compile() {
        for when in [
            "size(key) > 0",
            "key.contains(\"a\")",
            "key.startsWith(\"a\")",
            "key.endsWith(\"a\")",
            "key.matches(\"^a\")",
            "has(value.a)",
            "value.items.exists(i, i > 1)",
            "value.items.all(i, i > 1)",
        ] {
            assert!(Expr::compile(when).is_ok(), "{when}");
        }
    }

    /// The catalogue's explanations give the engine's limits as numbers.
    #[test]
    fn the_limits_explained_are_the_engines() {
        let text = rules::ROUTE_OVER_LIMITS.explanation;
        for phrase in [
            format!("at most {ROUTES_MAX} routes"),
            format!("at most {RULES_MAX} rules"),
            format!("at most {TARGETS_MAX} topics"),
            format!("at most {HEADERS_MAX} headers"),
        ] {
            assert!(text.contains(&phrase), "{phrase}");
        }
        assert!(
            rules::INVALID_ROUTE_NAME
                .summary
                .contains(&ROUTE_NAME_CHARS_MAX.to_string())
        );
    }
}
