-- The auth example's users (examples/auth-server).
--
-- * email is unique whatever its case: the column compares with NOCASE, so
--   `WHERE email = ?` finds 'LImpett0@SmugMug.com' and uses the unique index.
--   NOCASE folds ASCII letters only; the server lower-cases the ASCII letters
--   of an email the same way before it uses one as a cache key.
-- * password_hash is an argon2id PHC string ($argon2id$v=19$m=19456,t=2,p=1$
--   salt$hash), never a plaintext password.
-- * created_at is RFC 3339 text in UTC (SQLite has no timestamp type).
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    email         TEXT NOT NULL COLLATE NOCASE,
    password_hash TEXT NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    gender        TEXT NOT NULL,
    country       TEXT NOT NULL,
    job           TEXT NOT NULL,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE UNIQUE INDEX users_email_unique ON users (email COLLATE NOCASE);
