//! Profile pictures without pictures: initials on a colour picked from the
//! user's email, drawn as inline SVG by the profile template. Nothing is
//! fetched from elsewhere, so the page works offline, and the template
//! escapes the initials like any other text.

/// Background colours, all dark enough for white text (WCAG AA at this size).
const PALETTE: [&str; 8] = [
    "#2f6f5e", "#3b5ba5", "#8a4b9c", "#b0463c", "#9a5b13", "#2d6a8e", "#5f6b2a", "#a03a6e",
];

/// What the template needs to draw an avatar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Avatar {
    /// One or two uppercase letters, or `?`.
    pub initials: String,
    /// A CSS colour from a fixed palette.
    pub background: &'static str,
}

impl Avatar {
    /// The avatar of the user called `name` with address `email`. The colour
    /// depends on the email only, so it stays put if the name changes.
    pub fn new(name: &str, email: &str) -> Avatar {
        let words: Vec<&str> = name.split_whitespace().collect();
        let first_letter = |word: &&str| word.chars().find(|c| c.is_alphanumeric());
        let mut initials: String = match words.as_slice() {
            [] => String::new(),
            [only] => first_letter(only).into_iter().collect(),
            [first, .., last] => first_letter(first)
                .into_iter()
                .chain(first_letter(last))
                .collect(),
        };
        initials = initials.to_uppercase();
        if initials.is_empty() {
            initials.push('?');
        }
        // FNV-1a: small, stable across runs and platforms (unlike std's hasher).
        let hash = email
            .trim()
            .to_lowercase()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        let background = PALETTE[(hash % PALETTE.len() as u64) as usize];
        Avatar {
            initials,
            background,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_come_from_the_first_and_last_names() {
        let cases = [
            ("Lissa Impett", "LI"),
            ("ada", "A"),
            ("Jean-Luc de la Picard", "JP"),
            ("  émile   zola ", "ÉZ"),
            ("", "?"),
            ("<script>", "S"),
            ("!!! ???", "?"),
        ];
        for (name, initials) in cases {
            assert_eq!(Avatar::new(name, "a@b.c").initials, initials, "{name:?}");
        }
    }

    #[test]
    fn colour_is_stable_per_email_and_case_insensitive() {
        let a = Avatar::new("A", "Someone@Example.com");
        let b = Avatar::new("B", "someone@example.com");
        assert_eq!(a.background, b.background);
        assert!(PALETTE.contains(&a.background));
    }
}
