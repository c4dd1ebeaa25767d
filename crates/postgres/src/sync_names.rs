//! The `synchronous_standby_names` syntax: the value Patroni writes for a set of standbys, and the parse of whatever
//! value PostgreSQL runs with (written by us, by Python Patroni, or configured by hand).

/// A parsed `synchronous_standby_names`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStandbyNames {
    /// `ANY n (...)`: quorum commit. Otherwise priority (`FIRST n (...)`, `n (...)`, a plain list, or empty).
    pub any: bool,
    /// How many standbys a commit waits for: 0 when empty, 1 for a plain list.
    pub num: usize,
    /// The names listed, `*` excluded, unquoted.
    pub names: Vec<String>,
    /// `*` is among them.
    pub star: bool,
}

/// A value PostgreSQL would not accept (or that we cannot read), with what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unparsable synchronous_standby_names value {value:?}: {reason}")]
pub struct ParseError {
    pub value: String,
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    First,
    Any,
    Ident,
    Quoted,
    Star,
    Num,
    Comma,
    Open,
    Close,
    Junk,
}

fn tokens(value: &str) -> Vec<(Kind, String, usize)> {
    let chars: Vec<(usize, char)> = value.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let ident_start = |c: char| c.is_ascii_alphabetic() || c == '_';
    let ident_rest = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    while i < chars.len() {
        let (pos, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if ident_start(c) {
            let mut j = i;
            while j < chars.len() && ident_rest(chars[j].1) {
                j += 1;
            }
            let word: String = chars[i..j].iter().map(|(_, c)| c).collect();
            // As Patroni's tokenizer: `first`/`any` are keywords only as a whole token of those letters; a longer
            // identifier starting with them (`anyone`) is still split there, as its regular expression does.
            let kind = if word.len() >= 5 && word[..5].eq_ignore_ascii_case("first") {
                j = i + 5;
                Kind::First
            } else if word.len() >= 3 && word[..3].eq_ignore_ascii_case("any") {
                j = i + 3;
                Kind::Any
            } else {
                Kind::Ident
            };
            let text: String = chars[i..j].iter().map(|(_, c)| c).collect();
            out.push((kind, text, pos));
            i = j;
            continue;
        }
        if c == '"' {
            // `"…"` with `""` for a quote inside.
            let mut j = i + 1;
            let mut closed = None;
            while j < chars.len() {
                if chars[j].1 == '"' {
                    if j + 1 < chars.len() && chars[j + 1].1 == '"' {
                        j += 2;
                        continue;
                    }
                    closed = Some(j);
                    break;
                }
                j += 1;
            }
            match closed {
                Some(end) => {
                    let text: String = chars[i..=end].iter().map(|(_, c)| c).collect();
                    out.push((Kind::Quoted, text, pos));
                    i = end + 1;
                }
                None => {
                    out.push((Kind::Junk, c.to_string(), pos));
                    i += 1;
                }
            }
            continue;
        }
        if c.is_ascii_digit() {
            let mut j = i;
            while j < chars.len() && chars[j].1.is_ascii_digit() {
                j += 1;
            }
            out.push((Kind::Num, chars[i..j].iter().map(|(_, c)| c).collect(), pos));
            i = j;
            continue;
        }
        let kind = match c {
            '*' => Kind::Star,
            ',' => Kind::Comma,
            '(' => Kind::Open,
            ')' => Kind::Close,
            _ => Kind::Junk,
        };
        out.push((kind, c.to_string(), pos));
        i += 1;
    }
    out
}

/// Parses a value as Patroni reads it (PostgreSQL's grammar: `[FIRST] n (list)`, `ANY n (list)`, or a list).
pub fn parse(value: &str) -> Result<SyncStandbyNames, ParseError> {
    let toks = tokens(value);
    let fail = |reason: String| ParseError { value: value.to_owned(), reason };
    if toks.is_empty() {
        return Ok(SyncStandbyNames::default());
    }
    let kinds: Vec<Kind> = toks.iter().map(|t| t.0).collect();
    let closed = kinds.last() == Some(&Kind::Close);
    let number = |t: &(Kind, String, usize)| {
        t.1.parse::<usize>().map_err(|_| fail(format!("number {} out of range at {}", t.1, t.2)))
    };
    let (any, num, list) = if kinds.len() >= 3 && kinds[..3] == [Kind::Any, Kind::Num, Kind::Open] && closed {
        (true, number(&toks[1])?, &toks[3..toks.len() - 1])
    } else if kinds.len() >= 3 && kinds[..3] == [Kind::First, Kind::Num, Kind::Open] && closed {
        (false, number(&toks[1])?, &toks[3..toks.len() - 1])
    } else if kinds.len() >= 2 && kinds[..2] == [Kind::Num, Kind::Open] && closed {
        (false, number(&toks[0])?, &toks[2..toks.len() - 1])
    } else {
        (false, 1, &toks[..])
    };
    let mut out = SyncStandbyNames { any, num, names: Vec::new(), star: false };
    for (i, (kind, text, pos)) in list.iter().enumerate() {
        if i % 2 == 1 {
            if i + 1 == list.len() {
                return Err(fail(format!("Unexpected token {kind:?} {text:?} at {pos}")));
            }
            if *kind != Kind::Comma {
                return Err(fail(format!("Got token {kind:?} {text:?} while expecting comma at {pos}")));
            }
            continue;
        }
        match kind {
            Kind::Ident | Kind::First | Kind::Any => out.names.push(text.clone()),
            Kind::Star => out.star = true,
            Kind::Quoted => out.names.push(text[1..text.len() - 1].replace("\"\"", "\"")),
            _ => return Err(fail(format!("Unexpected token {kind:?} {text:?} at {pos}"))),
        }
    }
    Ok(out)
}

/// A name as it goes into the list: bare when PostgreSQL reads it back unchanged, else double-quoted.
pub fn quote_standby_name(name: &str) -> String {
    let mut chars = name.chars();
    let plain = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && !name.eq_ignore_ascii_case("first")
        && !name.eq_ignore_ascii_case("any");
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// The value for `names` (`*` for any standby), as Patroni writes it: names sorted, `num` of them (`None`: all),
/// `ANY num (...)` for quorum commit (`any`), `num (...)` for several by priority, the name alone for one. No names
/// with `num` ≥ 1 means any standby (`*`); no names and no `num`: `None`, the parameter unset.
pub fn format(names: &[String], num: Option<usize>, any: bool) -> Option<String> {
    let star = names.iter().any(|n| n == "*") || (names.is_empty() && num.is_some_and(|n| n >= 1));
    let listed: Vec<String> = if star {
        vec!["*".to_owned()]
    } else {
        let mut sorted: Vec<&String> = names.iter().collect();
        sorted.sort();
        sorted.dedup();
        sorted.into_iter().map(|n| quote_standby_name(n)).collect()
    };
    let num = num.unwrap_or(listed.len());
    let joined = if listed.is_empty() { None } else { Some(listed.join(",")) };
    match joined {
        Some(list) if any || listed.len() > 1 => {
            let prefix = if any { "ANY " } else { "" };
            Some(format!("{prefix}{num} ({list})"))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn formats_as_patroni_writes() {
        assert_eq!(format(&[], None, false), None);
        assert_eq!(format(&[], Some(0), true), None);
        assert_eq!(format(&[], Some(1), false).as_deref(), Some("*"));
        assert_eq!(format(&v(&["*"]), None, false).as_deref(), Some("*"));
        assert_eq!(format(&[], Some(1), true).as_deref(), Some("ANY 1 (*)"));
        assert_eq!(format(&v(&["pg2"]), None, false).as_deref(), Some("pg2"));
        assert_eq!(format(&v(&["postgres-2"]), None, false).as_deref(), Some("\"postgres-2\""));
        assert_eq!(format(&v(&["b-1", "a-1"]), None, false).as_deref(), Some("2 (\"a-1\",\"b-1\")"));
        assert_eq!(format(&v(&["postgres-1"]), Some(1), true).as_deref(), Some("ANY 1 (\"postgres-1\")"));
        assert_eq!(
            format(&v(&["postgres-2", "postgres-0"]), Some(1), true).as_deref(),
            Some("ANY 1 (\"postgres-0\",\"postgres-2\")")
        );
        assert_eq!(
            format(&v(&["any", "first", "Ab$1"]), Some(2), true).as_deref(),
            Some("ANY 2 (Ab$1,\"any\",\"first\")")
        );
        assert_eq!(format(&v(&["a\"b"]), None, false).as_deref(), Some("\"a\"\"b\""));
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(parse("").unwrap(), SyncStandbyNames::default());
        assert_eq!(parse("  ").unwrap(), SyncStandbyNames::default());
        let p = parse("FiRsT").unwrap();
        assert_eq!((p.any, p.num, p.names.clone()), (false, 1, v(&["FiRsT"])));
        assert_eq!(parse("\"1\"").unwrap().names, v(&["1"]));
        let p = parse(" a , b ").unwrap();
        assert_eq!((p.num, p.names), (1, v(&["a", "b"])));
        let p = parse("ANY 4(\"a\",*,b)").unwrap();
        assert_eq!((p.any, p.num, p.star, p.names), (true, 4, true, v(&["a", "b"])));
        let p = parse("2 (\"postgres-0\",\"postgres-2\")").unwrap();
        assert_eq!((p.any, p.num, p.names), (false, 2, v(&["postgres-0", "postgres-2"])));
        let p = parse("FIRST 1 (x, \"y\"\"z\")").unwrap();
        assert_eq!((p.any, p.num, p.names), (false, 1, v(&["x", "y\"z"])));
        assert!(parse("*").unwrap().star);
        let p = parse("ANY 1 (*)").unwrap();
        assert!(p.any && p.star && p.names.is_empty());
    }

    #[test]
    fn rejects_what_postgres_rejects() {
        for bad in ["1", "a,", "ANY 4(\"a\" b,\"c c\")", "FIRST 4(\"a\",)", "2 (,)", "a b"] {
            assert!(parse(bad).is_err(), "{bad} should not parse");
        }
        let e = parse("a,").unwrap_err();
        assert!(e.to_string().starts_with("Unparsable synchronous_standby_names value \"a,\""), "{e}");
    }

    #[test]
    fn round_trip() {
        for (names, num, any) in [(v(&["a-1", "b"]), Some(1), true), (v(&["x", "y", "z"]), None, false)] {
            let text = format(&names, num, any).unwrap();
            let p = parse(&text).unwrap();
            assert_eq!(p.any, any);
            assert_eq!(p.num, num.unwrap_or(names.len()));
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(p.names, sorted);
        }
    }
}
