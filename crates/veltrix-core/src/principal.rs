//! Principals' names from client certificates' subjects: Kafka's
//! `ssl.principal.mapping.rules`, applied to the subject's distinguished name
//! as RFC 2253 writes it (what Kafka's `X500Principal.getName()` gives:
//! `CN=alice,OU=payments,O=Example`, most specific first, no spaces). The
//! Kafka adapter reads the subject off the certificate; the configuration's
//! checker parses the rules with the same code.
//!
//! A rule is `DEFAULT` (the whole name) or `RULE:pattern/replacement/` with
//! an optional `L` or `U` after the last slash to lower- or upper-case the
//! result. The pattern must match the whole name; the first rule that matches
//! decides. `$1` in the replacement is the pattern's first group (Rust's
//! `regex` syntax, in which `${1}x` separates a group from the text after it).
//! A name no rule matches is refused, as Kafka refuses it.

use regex::Regex;

/// Why a rule does not parse, or a certificate yields no principal.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrincipalError {
    #[error("`{rule}`: {why}")]
    BadRule { rule: String, why: String },
    #[error("no principal mapping rule matches `{0}`")]
    NoRuleMatches(String),
}

/// Letter case applied after a rule's replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        pattern: Regex,
        replacement: String,
        case: Case,
    },
}

/// `ssl.principal.mapping.rules`, parsed.
#[derive(Debug, Clone)]
pub struct PrincipalMapping {
    rules: Vec<Rule>,
}

impl Default for PrincipalMapping {
    /// `DEFAULT` alone: the whole name.
    fn default() -> PrincipalMapping {
        PrincipalMapping {
            rules: vec![Rule::Default],
        }
    }
}

impl PrincipalMapping {
    /// Parses rules, in order; none at all is `DEFAULT`.
    pub fn parse<S: AsRef<str>>(rules: &[S]) -> Result<PrincipalMapping, PrincipalError> {
        if rules.is_empty() {
            return Ok(PrincipalMapping::default());
        }
        let rules = rules
            .iter()
            .map(|r| parse_rule(r.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PrincipalMapping { rules })
    }

    /// The principal's name for a distinguished name (without `User:`).
    pub fn map(&self, name: &str) -> Result<String, PrincipalError> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Ok(name.to_owned()),
                Rule::Replace {
                    pattern,
                    replacement,
                    case,
                } => {
                    let Some(m) = pattern.find(name) else { continue };
                    if m.start() != 0 || m.end() != name.len() {
                        continue;
                    }
                    let out = pattern.replace_all(name, replacement.as_str()).into_owned();
                    return Ok(match case {
                        Case::Keep => out,
                        Case::Lower => out.to_lowercase(),
                        Case::Upper => out.to_uppercase(),
                    });
                }
            }
        }
        Err(PrincipalError::NoRuleMatches(name.to_owned()))
    }
}

fn parse_rule(rule: &str) -> Result<Rule, PrincipalError> {
    let bad = |why: &str| PrincipalError::BadRule {
        rule: rule.to_owned(),
        why: why.to_owned(),
    };
    let trimmed = rule.trim();
    if trimmed == "DEFAULT" {
        return Ok(Rule::Default);
    }
    let Some(body) = trimmed.strip_prefix("RULE:") else {
        return Err(bad(
            "a rule is `DEFAULT` or `RULE:pattern/replacement/` with an optional L or U",
        ));
    };
    // pattern/replacement/flags, where `\/` is a slash inside a part.
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('/') => part.push('/'),
                Some(other) => {
                    part.push('\\');
                    part.push(other);
                }
                None => part.push('\\'),
            },
            '/' => parts.push(std::mem::take(&mut part)),
            c => part.push(c),
        }
    }
    parts.push(part);
    let [pattern, replacement, flags] = <[String; 3]>::try_from(parts)
        .map_err(|_| bad("expected `RULE:pattern/replacement/` and an optional L or U"))?;
    let case = match flags.as_str() {
        "" => Case::Keep,
        "L" => Case::Lower,
        "U" => Case::Upper,
        _ => return Err(bad("after the last slash only L or U may follow")),
    };
    let pattern = Regex::new(&pattern).map_err(|e| bad(&format!("the pattern does not compile: {e}")))?;
    Ok(Rule::Replace {
        pattern,
        replacement,
        case,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_whole_name() {
        let m = PrincipalMapping::parse::<&str>(&[]).unwrap();
        assert_eq!(m.map("CN=alice,O=Example").unwrap(), "CN=alice,O=Example");
    }

    #[test]
    fn rules_as_kafka_documents_them() {
        let m = PrincipalMapping::parse(&[
            r"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            r"RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
            r"RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L",
            "DEFAULT",
        ])
        .unwrap();
        assert_eq!(
            m.map("CN=kafka-admin,OU=ServiceUsers,O=Unknown").unwrap(),
            "kafka-admin"
        );
        assert_eq!(
            m.map("CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Santa Clara,ST=CA,C=US")
                .unwrap(),
            "duke@javasoft"
        );
        assert_eq!(m.map("OU=X,CN=Bob.Smith").unwrap(), "bob.smith");
        assert_eq!(m.map("O=nobody").unwrap(), "O=nobody");
    }

    #[test]
    fn upper_case_and_escaped_slash() {
        let m = PrincipalMapping::parse(&[r"RULE:^CN=([^,]*).*$/svc\/$1/U"]).unwrap();
        assert_eq!(m.map("CN=abc,O=x").unwrap(), "SVC/ABC");
    }

    #[test]
    fn no_match_without_default_is_refused() {
        let m = PrincipalMapping::parse(&[r"RULE:^CN=(x)$/$1/"]).unwrap();
        assert_eq!(m.map("CN=y").unwrap_err(), PrincipalError::NoRuleMatches("CN=y".into()));
        // The pattern must match the whole name, not a part of it.
        assert!(m.map("CN=xx").is_err());
    }

    #[test]
    fn bad_rules_say_why() {
        for rule in ["RULE:abc", "RULE:a/b/X", "RULE:(/b/", "SOMETHING"] {
            assert!(
                matches!(PrincipalMapping::parse(&[rule]), Err(PrincipalError::BadRule { .. })),
                "{rule}"
            );
        }
    }
}
