//! Splitting a typed line into arguments, with redis-cli's quoting rules.
//!
//! This is redis-cli's `sdssplitargs`: arguments are separated by white
//! space; `"double quotes"` understand `\n \r \t \b \a`, `\xhh` and `\<any>`;
//! `'single quotes'` are literal except for `\'`; a closing quote must be
//! followed by white space or the end of the line. Anything else (an
//! unterminated quote, `"a"b`) is an error, which redis-cli reports as
//! `Invalid argument(s)`.

/// Why a line could not be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidArguments;

/// Splits `line` into arguments. Arguments are bytes: `\xhh` can produce any.
pub fn split_args(line: &str) -> Result<Vec<Vec<u8>>, InvalidArguments> {
    let line = line.as_bytes();
    let at = |i: usize| line.get(i).copied();
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while at(i).is_some_and(is_space) {
            i += 1;
        }
        if i >= line.len() {
            return Ok(args);
        }
        let mut current = Vec::new();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let c = at(i);
            if in_double {
                match c {
                    None => return Err(InvalidArguments),
                    Some(b'\\')
                        if at(i + 1) == Some(b'x') && hex_pair(at(i + 2), at(i + 3)).is_some() =>
                    {
                        current.extend(hex_pair(at(i + 2), at(i + 3)));
                        i += 3;
                    }
                    Some(b'\\') if at(i + 1).is_some() => {
                        i += 1;
                        current.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                    }
                    Some(b'"') => {
                        closing_quote_ok(at(i + 1))?;
                        i += 1;
                        break;
                    }
                    Some(other) => current.push(other),
                }
            } else if in_single {
                match c {
                    None => return Err(InvalidArguments),
                    Some(b'\\') if at(i + 1) == Some(b'\'') => {
                        i += 1;
                        current.push(b'\'');
                    }
                    Some(b'\'') => {
                        closing_quote_ok(at(i + 1))?;
                        i += 1;
                        break;
                    }
                    Some(other) => current.push(other),
                }
            } else {
                match c {
                    None | Some(b' ' | b'\n' | b'\r' | b'\t') => break,
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(other) => current.push(other),
                }
            }
            i += 1;
        }
        args.push(current);
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn closing_quote_ok(next: Option<u8>) -> Result<(), InvalidArguments> {
    match next {
        Some(c) if !is_space(c) => Err(InvalidArguments),
        _ => Ok(()),
    }
}

fn hex_pair(high: Option<u8>, low: Option<u8>) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(high?)? * 16 + digit(low?)?) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Result<Vec<String>, InvalidArguments> {
        split_args(line).map(|args| {
            args.into_iter()
                .map(|a| String::from_utf8(a).expect("test arguments are UTF-8"))
                .collect()
        })
    }

    #[test]
    fn splits_like_redis_cli() {
        let table: &[(&str, &[&str])] = &[
            ("set k v", &["set", "k", "v"]),
            ("  get   k  ", &["get", "k"]),
            ("", &[]),
            ("   ", &[]),
            (r#"set k "hello world""#, &["set", "k", "hello world"]),
            (r#"set k 'hello world'"#, &["set", "k", "hello world"]),
            (r#"set k "a\"b\\c\n""#, &["set", "k", "a\"b\\c\n"]),
            (r#"set k "\x41\x7a\q""#, &["set", "k", "Azq"]),
            (r#"set k "\x4""#, &["set", "k", "x4"]),
            (r"set k 'it\'s \n'", &["set", "k", "it's \\n"]),
            (r#"set k """#, &["set", "k", ""]),
            ("set k ''", &["set", "k", ""]),
            (r#"ab"cd""#, &["abcd"]),
            ("a\tb", &["a", "b"]),
        ];
        for (line, expected) in table {
            assert_eq!(
                split(line),
                Ok(expected.iter().map(|s| s.to_string()).collect()),
                "{line:?}"
            );
        }
    }

    #[test]
    fn rejects_bad_quoting() {
        for line in [
            r#"set k "open"#,
            "set k 'open",
            r#"set k "a"b"#,
            "set k 'a'b",
            r#"x "\"#,
        ] {
            assert_eq!(split(line), Err(InvalidArguments), "{line:?}");
        }
    }

    #[test]
    fn hex_escapes_make_any_byte() {
        assert_eq!(split_args(r#""\x00\xff""#), Ok(vec![vec![0u8, 0xff]]));
    }
}
