//! Kafka's `ssl.principal.mapping.rules`: how a client certificate's subject (RFC 2253)
//! becomes the principal's name. A comma-separated list of `RULE:pattern/replacement/`
//! (optionally followed by `L` or `U` to lower- or upper-case the result) and `DEFAULT`
//! (the subject unchanged); the first rule whose pattern matches the whole subject wins,
//! and a subject no rule matches is refused, as in Kafka.

use regex::Regex;

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Map {
        pattern: Regex,
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    #[error("ssl_principal_mapping_rules: cannot parse {0:?} (RULE:pattern/replacement/[LU] or DEFAULT)")]
    Syntax(String),
    #[error("ssl_principal_mapping_rules: bad pattern {pattern:?}: {reason}")]
    Pattern { pattern: String, reason: String },
    #[error("no ssl_principal_mapping_rules rule applies to {0:?}")]
    NoRule(String),
}

impl PrincipalMapper {
    pub fn parse(text: &str) -> Result<PrincipalMapper, MappingError> {
        let mut rules = Vec::new();
        let mut rest = text.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after).ok_or_else(|| syntax(rest))?;
                let (replacement, after) = until_slash(after).ok_or_else(|| syntax(rest))?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let anchored = format!("^(?:{pattern})$");
                let pattern = Regex::new(&anchored).map_err(|e| MappingError::Pattern {
                    pattern: pattern.to_string(),
                    reason: e.to_string(),
                })?;
                rules.push(Rule::Map {
                    pattern,
                    replacement: java_replacement(replacement),
                    case,
                });
                rest = after;
            } else {
                return Err(syntax(rest));
            }
            let trimmed = rest.trim_start();
            if !(trimmed.is_empty() || trimmed.starts_with(',')) {
                return Err(syntax(rest));
            }
            rest = trimmed.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        }
        if rules.is_empty() {
            return Err(syntax(text));
        }
        Ok(PrincipalMapper { rules })
    }

    /// The principal name for subject `dn`.
    pub fn map(&self, dn: &str) -> Result<String, MappingError> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Ok(dn.to_string()),
                Rule::Map {
                    pattern,
                    replacement,
                    case,
                } => {
                    if let Some(captures) = pattern.captures(dn) {
                        let mut name = String::new();
                        captures.expand(replacement, &mut name);
                        return Ok(match case {
                            Case::Keep => name,
                            Case::Lower => name.to_lowercase(),
                            Case::Upper => name.to_uppercase(),
                        });
                    }
                }
            }
        }
        Err(MappingError::NoRule(dn.to_string()))
    }
}

impl Default for PrincipalMapper {
    fn default() -> Self {
        PrincipalMapper {
            rules: vec![Rule::Default],
        }
    }
}

fn syntax(at: &str) -> MappingError {
    MappingError::Syntax(at.to_string())
}

/// A Java replacement string (`\\x` is a literal x) in the regex crate's syntax (`$$` is a
/// literal $); `$1` and `${1}` mean the same in both.
fn java_replacement(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            c => out.push(c),
        }
    }
    out
}

/// The text up to the first `/` not escaped by a backslash (escapes kept, as Kafka keeps
/// them for the regex), and what follows that slash.
fn until_slash(text: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '/' => return Some((&text[..i], &text[i + 1..])),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_documented_rules() {
        let mapper = PrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/, RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L, RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U, DEFAULT",
        )
        .unwrap();
        assert_eq!(
            mapper
                .map("CN=kafka-svc,OU=ServiceUsers,O=Unknown")
                .unwrap(),
            "kafka-svc"
        );
        assert_eq!(
            mapper
                .map("CN=Adam,OU=Eng,O=Acme,L=Here,ST=There,C=US")
                .unwrap(),
            "adam@eng"
        );
        assert_eq!(mapper.map("OU=x,cn=bob.b").unwrap(), "BOB.B");
        assert_eq!(mapper.map("OU=nobody").unwrap(), "OU=nobody");
    }

    #[test]
    fn a_subject_no_rule_matches_is_refused() {
        let mapper = PrincipalMapper::parse("RULE:^CN=([a-z]+)$/$1/").unwrap();
        assert_eq!(mapper.map("CN=alice").unwrap(), "alice");
        assert_eq!(
            mapper.map("CN=Alice,O=x"),
            Err(MappingError::NoRule("CN=Alice,O=x".into()))
        );
        assert_eq!(PrincipalMapper::default().map("CN=a").unwrap(), "CN=a");
    }

    #[test]
    fn escaped_slashes_and_bad_rules() {
        let mapper = PrincipalMapper::parse("RULE:^CN=a\\/b$/x\\/y/").unwrap();
        assert_eq!(mapper.map("CN=a/b").unwrap(), "x/y");
        assert!(matches!(
            PrincipalMapper::parse("RULE:^CN=(.*$/$1/"),
            Err(MappingError::Pattern { .. })
        ));
        assert!(matches!(
            PrincipalMapper::parse("RULE:abc"),
            Err(MappingError::Syntax(_))
        ));
        assert!(matches!(
            PrincipalMapper::parse("NOPE"),
            Err(MappingError::Syntax(_))
        ));
        assert!(matches!(
            PrincipalMapper::parse(""),
            Err(MappingError::Syntax(_))
        ));
        assert!(matches!(
            PrincipalMapper::parse("DEFAULTX"),
            Err(MappingError::Syntax(_))
        ));
    }
}
