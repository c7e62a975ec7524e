//! A rule catalogue: every problem a linter can report, each with a stable id
//! (a letter and three digits), a stable kebab-case name, a severity, where it
//! applies, a one-line summary and an explanation, in id order.

use annotate_snippets::Level;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Wrong in normal operation: the linter exits with status 1.
    Error,
    /// Risky: the linter exits with status 1 only with `--strict`.
    Warning,
    /// Worth knowing; never changes the exit status.
    Note,
}

impl Severity {
    /// `error`, `warning` or `note`, as printed.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }

    /// The renderer's level of the same name.
    pub fn level(self) -> Level<'static> {
        match self {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
            Severity::Note => Level::NOTE,
        }
    }
}

/// One rule of a catalogue; `A` says where it applies (the configuration
/// file's profile, the client's role).
#[derive(Debug, PartialEq, Eq)]
pub struct Rule<A: 'static> {
    /// Stable id, such as `V101` or `D101`.
    pub id: &'static str,
    /// Stable kebab-case name, accepted wherever the id is.
    pub name: &'static str,
    /// The usual severity of its findings.
    pub severity: Severity,
    /// Where it applies.
    pub applies: A,
    /// One line: what the rule finds.
    pub summary: &'static str,
    /// Why it matters and how to fix it, in a few paragraphs.
    pub explanation: &'static str,
}

/// Declares one `static` per rule and `CATALOGUE`, every rule in the order
/// written, for a crate that names `Rule` (an alias of [`Rule`] with its own
/// `A`) and whose `A` is the enum given first:
///
/// ```ignore
/// veltrix_diagnostic::catalogue! { Scope;
///     ACKS_ZERO = "D101" "acks-zero" Error Producer "summary" "explanation";
/// }
/// ```
#[macro_export]
macro_rules! catalogue {
    ($applies:ident; $($konst:ident = $id:literal $name:literal $sev:ident $where:ident $summary:literal $expl:literal;)*) => {
        $(
            #[doc = $summary]
            pub static $konst: Rule = $crate::Rule {
                id: $id,
                name: $name,
                severity: $crate::Severity::$sev,
                applies: $applies::$where,
                summary: $summary,
                explanation: $expl,
            };
        )*
        /// Every rule, in id order.
        pub static CATALOGUE: &[&Rule] = &[$(&$konst),*];
    };
}

/// The rule of `catalogue` with this id (`V101`) or name
/// (`batch-larger-than-segment`), case-insensitively.
pub fn find<A>(catalogue: &'static [&'static Rule<A>], id_or_name: &str) -> Option<&'static Rule<A>> {
    catalogue
        .iter()
        .copied()
        .find(|r| r.id.eq_ignore_ascii_case(id_or_name) || r.name.eq_ignore_ascii_case(id_or_name))
}

/// What is wrong with a catalogue, for its tests: ids not `prefix` and three
/// digits, names not kebab-case, ids or names used twice, rules out of id
/// order (documents list them in catalogue order), explanations no longer
/// than their summary.
pub fn catalogue_problems<A>(catalogue: &[&Rule<A>], prefix: char) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, r) in catalogue.iter().enumerate() {
        let digits = r.id.strip_prefix(prefix).unwrap_or("");
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            problems.push(format!("{}: not {prefix} and three digits", r.id));
        }
        let kebab = !r.name.is_empty() && r.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
        if !kebab {
            problems.push(format!("{}: name `{}` is not kebab-case", r.id, r.name));
        }
        if catalogue[..i].iter().any(|o| o.id == r.id || o.name == r.name) {
            problems.push(format!("{}: id or name used twice", r.id));
        }
        if i > 0 && catalogue[i - 1].id >= r.id {
            problems.push(format!("{}: after {}, out of id order", r.id, catalogue[i - 1].id));
        }
        if r.explanation.len() <= r.summary.len() {
            problems.push(format!("{}: the explanation is no longer than the summary", r.id));
        }
    }
    problems
}

/// The catalogue as a Markdown table: id, name, severity, where each rule
/// applies (`applies` names it) and summary, under the five `headers`.
pub fn catalogue_table<A>(catalogue: &[&Rule<A>], headers: [&str; 5], applies: impl Fn(&A) -> &'static str) -> String {
    let mut out = format!("| {} |\n|---|---|---|---|---|\n", headers.join(" | "));
    for r in catalogue {
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | {} |\n",
            r.id,
            r.name,
            r.severity.name(),
            applies(&r.applies),
            r.summary.replace('|', "\\|")
        ));
    }
    out
}

/// The line before the generated reference in a document (`docs/*.md`).
pub const REFERENCE_START: &str = "<!-- reference:start -->\n";
/// The line after it.
pub const REFERENCE_END: &str = "<!-- reference:end -->\n";

/// `doc` with its generated reference, between [`REFERENCE_START`] and
/// [`REFERENCE_END`], replaced by `generated`: equal to `doc` when the
/// document is up to date. An error when a marker is missing.
pub fn with_reference(doc: &str, generated: &str) -> Result<String, String> {
    let start = doc.find(REFERENCE_START).ok_or("no reference start marker")? + REFERENCE_START.len();
    let end = doc.find(REFERENCE_END).ok_or("no reference end marker")?;
    if end < start {
        return Err("the reference end marker comes before the start marker".to_owned());
    }
    Ok(format!("{}{generated}{}", &doc[..start], &doc[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Where {
        Everywhere,
    }

    type Rule = super::Rule<Where>;

    crate::catalogue! { Where;
        FIRST = "T001" "first-rule" Error Everywhere "one" "the first rule, explained";
        SECOND = "T002" "second-rule" Note Everywhere "two" "the second rule, explained";
    }

    #[test]
    fn a_declared_catalogue_is_found_by_id_or_name_and_checked() {
        assert_eq!(CATALOGUE.len(), 2);
        assert_eq!(find(CATALOGUE, "t002").map(|r| r.name), Some("second-rule"));
        assert_eq!(find(CATALOGUE, "FIRST-RULE").map(|r| r.id), Some("T001"));
        assert!(find(CATALOGUE, "T003").is_none());
        assert_eq!(catalogue_problems(CATALOGUE, 'T'), Vec::<String>::new());
        assert_eq!(SECOND.applies, Where::Everywhere);
    }

    #[test]
    fn the_reference_is_replaced_between_its_markers() {
        let doc = format!("intro\n{REFERENCE_START}old\n{REFERENCE_END}outro\n");
        assert_eq!(
            with_reference(&doc, "new\n").unwrap(),
            format!("intro\n{REFERENCE_START}new\n{REFERENCE_END}outro\n")
        );
        assert!(with_reference("no markers", "x").is_err());
    }

    #[test]
    fn problems_are_named() {
        let swapped = [&SECOND, &FIRST];
        assert_eq!(catalogue_problems(&swapped, 'T'), ["T001: after T002, out of id order"]);
        assert_eq!(
            catalogue_problems(&[&FIRST, &FIRST], 'V'),
            [
                "T001: not V and three digits",
                "T001: not V and three digits",
                "T001: id or name used twice",
                "T001: after T001, out of id order"
            ]
        );
    }
}
