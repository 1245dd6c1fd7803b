//! `seed-users`: writes the migration that seeds the demo users.
//!
//! ```text
//! cargo run --release -p auth-server --bin seed-users -- [--count N] [--show N] [--out PATH]
//! ```
//!
//! Names, genders, countries, jobs, emails and creation dates come from the
//! lists in `data.rs` through a fixed-seed generator, so they are the same on
//! every run. Passwords are not: each user gets 10 random characters from
//! the operating system's RNG (except user 1, whose password is the one the
//! documentation publishes), hashed with argon2id and its own random salt.
//! Only the hashes are written; the first `--show` (email, password) pairs
//! are printed once, for the README, and every other password is forgotten.
//!
//! The output is a migration: once a database has applied it, sqlx refuses
//! to start against that database if the file changes. After regenerating,
//! delete the old database file (it is only demo data).

mod data;

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use auth_server::password;

/// User 1's login, published in the README on purpose.
const DEMO_EMAIL: &str = "limpett0@smugmug.com";
const DEMO_PASSWORD: &str = "pCHecmGBZ7";

/// Fixed seed: the same users on every run.
const SEED: u64 = 0x6b65_7963_6166_6535;

/// One generated user.
struct Person {
    name: String,
    email: String,
    gender: &'static str,
    country: &'static str,
    job: &'static str,
    created_at: String,
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse(std::env::args().skip(1))?;
    let people = generate(options.count);
    let mut shown = Vec::new();
    let mut rows = Vec::with_capacity(people.len());
    for (index, person) in people.iter().enumerate() {
        let secret = if index == 0 {
            DEMO_PASSWORD.to_string()
        } else {
            random_password()
        };
        let hash = password::hash_blocking(&secret)?;
        if index < options.show {
            shown.push((person.email.clone(), secret));
        }
        rows.push(row(index + 1, person, &hash));
        if (index + 1) % 20 == 0 {
            eprintln!("hashed {} of {}", index + 1, people.len());
        }
    }
    let sql = migration(&rows);
    std::fs::write(&options.out, sql)
        .with_context(|| format!("writing {}", options.out.display()))?;
    eprintln!("wrote {} users to {}", rows.len(), options.out.display());
    println!("Demo logins (printed once; only hashes were written):");
    for (email, secret) in shown {
        println!("  {email:<36} {secret}");
    }
    Ok(())
}

struct Options {
    count: usize,
    show: usize,
    out: PathBuf,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Options> {
        let mut options = Options {
            count: 120,
            show: 5,
            out: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../migrations/0002_seed_demo_users.sql"),
        };
        while let Some(flag) = args.next() {
            let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--count" => options.count = value()?.parse().context("--count")?,
                "--show" => options.show = value()?.parse().context("--show")?,
                "--out" => options.out = PathBuf::from(value()?),
                "-h" | "--help" => {
                    println!("seed-users [--count N (120)] [--show N (5)] [--out PATH]");
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?} (try --help)"),
            }
        }
        if !(1..=100_000).contains(&options.count) {
            bail!("--count must be between 1 and 100000");
        }
        Ok(options)
    }
}

/// The users, deterministically. User 1 is always Lissa Impett.
fn generate(count: usize) -> Vec<Person> {
    let mut rng = SplitMix64(SEED);
    (0..count)
        .map(|index| {
            let roll = rng.below(24);
            let (first, gender) = match roll {
                0..=10 => (rng.pick(data::FEMALE_NAMES), "Female"),
                11..=21 => (rng.pick(data::MALE_NAMES), "Male"),
                _ => (rng.pick(data::OTHER_NAMES), rng.pick(data::OTHER_GENDERS)),
            };
            let surname = rng.pick(data::SURNAMES);
            let domain = rng.pick(data::DOMAINS);
            let country = rng.pick(data::COUNTRIES);
            let job = rng.pick(data::JOBS);
            // Accounts opened over 2023-2025.
            let created = 1_672_531_200 + rng.below(3 * 365 * 24 * 3600);
            let mut person = Person {
                name: format!("{first} {surname}"),
                email: email(first, surname, index, domain),
                gender,
                country,
                job,
                created_at: rfc3339(created),
            };
            if index == 0 {
                person.name = "Lissa Impett".to_string();
                person.email = DEMO_EMAIL.to_string();
                person.gender = "Female";
            }
            person
        })
        .collect()
}

/// `limpett0@smugmug.com`: first initial, surname, row number, domain.
fn email(first: &str, surname: &str, index: usize, domain: &str) -> String {
    let letters = |s: &str| {
        s.chars()
            .filter(char::is_ascii_alphabetic)
            .map(|c| c.to_ascii_lowercase())
            .collect::<String>()
    };
    let initial = letters(first).chars().next().unwrap_or('x');
    format!("{initial}{}{index}@{domain}", letters(surname))
}

fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    (0..10)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

fn row(id: usize, person: &Person, hash: &str) -> String {
    format!(
        "({id}, {}, {}, {}, {}, {}, {}, {})",
        quote(&person.name),
        quote(&person.email),
        quote(hash),
        quote(person.gender),
        quote(person.country),
        quote(person.job),
        quote(&person.created_at),
    )
}

fn migration(rows: &[String]) -> String {
    let mut sql = String::from(
        "-- Demo users for the auth example. GENERATED by\n\
         --   cargo run --release -p auth-server --bin seed-users\n\
         -- (examples/auth-server/src/bin/seed-users); do not edit by hand.\n\
         -- Passwords are argon2id hashes with their own salts; no plaintext is\n\
         -- stored. The documented demo login is user 1: limpett0@smugmug.com.\n\
         INSERT INTO users (id, name, email, password_hash, gender, country, job, created_at) VALUES\n",
    );
    for (i, row) in rows.iter().enumerate() {
        let end = if i + 1 == rows.len() { ";" } else { "," };
        let _ = writeln!(sql, "    {row}{end}");
    }
    sql
}

/// A SQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn rfc3339(unix_secs: u64) -> String {
    auth_server::sessions::rfc3339(unix_secs.saturating_mul(1000))
}

/// SplitMix64: tiny, and unlike `rand`'s `StdRng`, guaranteed to give the
/// same sequence forever.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn pick(&mut self, items: &[&'static str]) -> &'static str {
        let index = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
        items[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_user_one_is_the_demo_login() {
        let (a, b) = (generate(130), generate(130));
        assert!(
            a.iter()
                .zip(&b)
                .all(|(x, y)| x.email == y.email && x.job == y.job)
        );
        assert_eq!(a[0].email, DEMO_EMAIL);
        assert_eq!(a[0].name, "Lissa Impett");
        let mut emails: Vec<&str> = a.iter().map(|p| p.email.as_str()).collect();
        emails.sort_unstable();
        emails.dedup();
        assert_eq!(emails.len(), 130, "emails are unique");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("O'Hara"), "'O''Hara'");
        assert_eq!(email("Ynez", "O'Hara", 7, "x.io"), "yohara7@x.io");
    }
}
