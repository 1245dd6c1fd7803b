//! Turning a request's arguments into typed values, with Redis's error texts.
//!
//! A command's `parse` walks its arguments with an [`ArgCursor`] and returns a
//! typed struct or a [`CmdError`]; nothing here panics on what a client sent.

use keycafe_core::Args;

/// An error a client caused, sent back as an error reply. The `Display` text
/// is the exact reply line (Redis's wording, so clients recognise it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdError {
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(String),
    #[error("ERR syntax error")]
    Syntax,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpireTime(String),
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    #[error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")]
    TooLarge,
    #[error("ERR This node is not in cluster mode")]
    NotInCluster,
    /// Any other reply line, already complete with its code word.
    #[error("{0}")]
    Other(String),
}

pub type CmdResult<T = ()> = Result<T, CmdError>;

/// A cursor over one request's arguments (after the command name).
pub struct ArgCursor<'a> {
    args: Args<'a>,
    pos: usize,
}

impl<'a> ArgCursor<'a> {
    /// A cursor over `args`, positioned after the command name.
    pub fn new(args: Args<'a>) -> Self {
        ArgCursor { args, pos: 1 }
    }

    /// The arguments not yet read.
    pub fn remaining(&self) -> usize {
        self.args.len().saturating_sub(self.pos)
    }

    /// The next argument, or a syntax error if there is none.
    pub fn next_bytes(&mut self) -> CmdResult<&'a [u8]> {
        let arg = self.args.get(self.pos).ok_or(CmdError::Syntax)?;
        self.pos += 1;
        Ok(arg)
    }

    /// The next argument as an `i64`, or "not an integer".
    pub fn next_int(&mut self) -> CmdResult<i64> {
        parse_int(self.next_bytes()?)
    }

    /// The next argument, upper-cased, for matching option keywords. Options
    /// longer than 16 bytes are not keywords of any command.
    pub fn next_keyword(&mut self) -> CmdResult<Keyword> {
        Ok(Keyword::new(self.next_bytes()?))
    }

    /// A syntax error if arguments are left over.
    pub fn finish(&self) -> CmdResult<()> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(CmdError::Syntax)
        }
    }
}

/// An argument upper-cased into a small stack buffer, for comparing with
/// option names (`EX`, `NX`, `KEEPTTL`) without allocating.
pub struct Keyword {
    buf: [u8; 16],
    len: usize,
}

impl Keyword {
    pub fn new(arg: &[u8]) -> Keyword {
        let mut buf = [0u8; 16];
        if arg.len() > buf.len() {
            return Keyword { buf, len: 0 };
        }
        for (dst, src) in buf.iter_mut().zip(arg) {
            *dst = src.to_ascii_uppercase();
        }
        Keyword {
            buf,
            len: arg.len(),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Redis's reply for an unknown subcommand of a container command.
pub fn unknown_subcommand(args: Args<'_>, command: &str) -> CmdError {
    let sub = String::from_utf8_lossy(args.get(1).unwrap_or_default());
    CmdError::Other(format!(
        "ERR unknown subcommand '{sub}'. Try {command} HELP."
    ))
}

/// Parses a decimal `i64` as Redis does (no spaces, no `+`, no leading zeros).
pub fn parse_int(arg: &[u8]) -> CmdResult<i64> {
    keycafe_core::resp::parse_i64(arg).ok_or(CmdError::NotInteger)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(Keyword::new(b"keepTTL").as_bytes(), b"KEEPTTL");
        assert_eq!(Keyword::new(&[b'x'; 40]).as_bytes(), b"");
    }

    #[test]
    fn integers_are_strict() {
        assert_eq!(parse_int(b"-42"), Ok(-42));
        assert_eq!(parse_int(b"9223372036854775807"), Ok(i64::MAX));
        for bad in [
            &b""[..],
            b" 1",
            b"+1",
            b"01",
            b"1.5",
            b"9223372036854775808",
            b"abc",
        ] {
            assert_eq!(parse_int(bad), Err(CmdError::NotInteger), "{bad:?}");
        }
    }
}
