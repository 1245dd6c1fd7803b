//! Splitting a typed line into arguments, with redis-cli's quoting rules.
//!
//! The rules are redis-cli's `sdssplitargs`, which are also the rules of
//! inline commands, so the splitting itself is keycafe-core's
//! [`keycafe_core::resp::split_command_line`]: arguments are separated by
//! white space; `"double quotes"` understand `\n \r \t \b \a`, `\xhh` and
//! `\<any>`; `'single quotes'` are literal except for `\'`; a closing quote
//! must be followed by white space or the end of the line. Anything else (an
//! unterminated quote, `"a"b`) is an error, which redis-cli reports as
//! `Invalid argument(s)`. The tests below pin redis-cli's behaviour.

/// Why a line could not be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidArguments;

/// Splits `line` into arguments. Arguments are bytes: `\xhh` can produce any.
pub fn split_args(line: &str) -> Result<Vec<Vec<u8>>, InvalidArguments> {
    keycafe_core::resp::split_command_line(line.as_bytes()).map_err(|_| InvalidArguments)
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
