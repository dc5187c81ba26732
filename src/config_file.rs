//! Settings from a TOML file (`--config FILE` or `ORGBOARD_CONFIG`), SPEC
//! §15: its keys are the settings' names without the `ORGBOARD_` prefix, in
//! lower case (`addr = "127.0.0.1:9000"`, `db_max_connections = 8`). Each
//! value becomes that setting's default, so the environment and the
//! command-line flags still win over the file. An unknown key, a value of the
//! wrong type or one its setting refuses is reported by name, one line per
//! problem, before anything starts. Values from the file are never shown by
//! `--help` (a file may hold secrets).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Command;

/// The environment variable naming the file.
pub const ENV: &str = "ORGBOARD_CONFIG";

/// One setting from the file: its key, the environment variable it stands
/// for, and its value as text.
#[derive(Debug, Clone)]
pub struct Setting {
    key: String,
    env: String,
    value: String,
}

/// The file named by `--config FILE` / `--config=FILE` in `args`, else by
/// `ORGBOARD_CONFIG`.
pub fn path_from(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if s == "--" {
            break;
        }
        if s == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = s.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os(ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Reads `path` and checks every key and value against the settings of
/// `cmd` (and its subcommands).
pub fn load(path: &Path, cmd: &Command) -> Result<Vec<Setting>, Vec<String>> {
    let at = |msg: String| format!("config file {}: {msg}", path.display());
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![at(format!("cannot read it: {e}"))])?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let msg = e.message().trim().to_owned();
        vec![at(match line {
            Some(n) => format!("line {n}: {msg}"),
            None => msg,
        })]
    })?;
    let mut args = Vec::new();
    collect_args(cmd, &mut args);
    let mut problems = Vec::new();
    let mut settings = Vec::new();
    for (key, value) in &table {
        let env = format!("ORGBOARD_{}", key.to_uppercase());
        let found = (key.as_str() == key.to_lowercase().as_str())
            .then(|| args.iter().find(|(_, a)| a.get_env() == Some(env.as_ref())))
            .flatten();
        let Some((_, arg)) = found else {
            let hint = closest(key, &args)
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_default();
            problems.push(at(format!(
                "unknown setting `{key}` (keys are the ORGBOARD_* names without the prefix, in lower case){hint}"
            )));
            continue;
        };
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                problems.push(at(format!(
                    "`{key}` must be a string, a whole number or true/false, not {}",
                    other.type_str()
                )));
                continue;
            }
        };
        if let Err(problem) = check_value(arg, value, &text) {
            problems.push(at(format!("`{key}`: {problem}")));
            continue;
        }
        settings.push(Setting {
            key: key.clone(),
            env,
            value: text,
        });
    }
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(problems)
    }
}

/// Whether `arg` accepts `text` (from the TOML `value`), as it would from
/// its flag: parsed by the argument's own parser in a command of its own.
fn check_value(arg: &clap::Arg, value: &toml::Value, text: &str) -> Result<(), String> {
    if !arg.get_action().takes_values() {
        // An on/off flag: a TOML boolean only.
        return match value {
            toml::Value::Boolean(_) => Ok(()),
            _ => Err("must be true or false".to_owned()),
        };
    }
    let Some(long) = arg.get_long() else {
        return Ok(());
    };
    let alone = Command::new("config-file")
        .no_binary_name(true)
        .arg(arg.clone().required(false));
    alone
        .try_get_matches_from([format!("--{long}={text}")])
        .map(|_| ())
        .map_err(|e| {
            let rendered = e.to_string();
            rendered
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_owned()
        })
}

/// Every argument of `cmd` and its subcommands that has an environment
/// variable, with the command it belongs to (the `config` argument itself
/// excepted: a file cannot name another file).
fn collect_args<'a>(cmd: &'a Command, out: &mut Vec<(&'a Command, &'a clap::Arg)>) {
    for a in cmd.get_arguments() {
        if a.get_env().is_some_and(|e| e != ENV) {
            out.push((cmd, a));
        }
    }
    for s in cmd.get_subcommands() {
        collect_args(s, out);
    }
}

/// The setting name nearest to a mistyped `key`, when it is close (at most
/// two edits).
fn closest(key: &str, args: &[(&Command, &clap::Arg)]) -> Option<String> {
    args.iter()
        .filter_map(|(_, a)| a.get_env()?.to_str()?.strip_prefix("ORGBOARD_"))
        .map(str::to_lowercase)
        .map(|k| (edits(key, &k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// `cmd` with `settings` as the defaults of their arguments, in it and in
/// every subcommand, hidden from `--help`.
pub fn with_defaults(mut cmd: Command, settings: &[Setting]) -> Command {
    let ids: Vec<(clap::Id, String)> = cmd
        .get_arguments()
        .filter_map(|a| {
            let s = settings
                .iter()
                .find(|s| a.get_env() == Some(s.env.as_ref()))?;
            Some((a.get_id().clone(), s.value.clone()))
        })
        .collect();
    for (id, value) in ids {
        cmd = cmd.mut_arg(id, |a| {
            // Leaked: a few short strings, once, at start-up (clap keeps
            // `'static` defaults).
            let value: &'static str = Box::leak(value.into_boxed_str());
            let a = a.default_value(value);
            // On/off flags show no default anyway (and clap wants none hidden).
            if a.get_action().takes_values() {
                a.hide_default_value(true)
            } else {
                a
            }
        });
    }
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in subs {
        cmd = cmd.mut_subcommand(name, |s| with_defaults(s, settings));
    }
    cmd
}

impl Setting {
    /// Its key in the file.
    pub fn key(&self) -> &str {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_count_insertions_deletions_and_changes() {
        assert_eq!(edits("databse_url", "database_url"), 1);
        assert_eq!(edits("adr", "addr"), 1);
        assert_eq!(edits("same", "same"), 0);
        assert_eq!(edits("", "abc"), 3);
    }

    /// File values reach the parsed settings, on/off flags included.
    #[test]
    fn file_values_become_the_settings() {
        use clap::{Args as _, FromArgMatches as _};
        let dir = std::env::temp_dir().join(format!("orgboard-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "trust_forwarded_for = true\nworkers = false\nmax_body_bytes = 2048\nlog = \"debug\"\n",
        )
        .expect("write");
        let cmd = crate::config::Config::augment_args(Command::new("t"));
        let settings = load(&path, &cmd).expect("valid");
        let cmd = with_defaults(cmd, &settings);
        let matches = cmd.try_get_matches_from(["t"]).expect("parses");
        let c = crate::config::Config::from_arg_matches(&matches).expect("config");
        // Unless the environment of the test run sets them itself.
        if std::env::var_os("ORGBOARD_TRUST_FORWARDED_FOR").is_none() {
            assert!(c.trust_forwarded_for);
        }
        if std::env::var_os("ORGBOARD_WORKERS").is_none() {
            assert!(!c.workers);
        }
        if std::env::var_os("ORGBOARD_MAX_BODY_BYTES").is_none() {
            assert_eq!(c.max_body_bytes, 2048);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn config_is_found_in_flags_then_environment() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            path_from(&args(&["orgboard", "serve", "--config", "a.toml"])),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            path_from(&args(&["orgboard", "--config=b.toml", "migrate"])),
            Some(PathBuf::from("b.toml"))
        );
        // After `--`, an argument is a value, not a flag.
        if std::env::var_os(ENV).is_none() {
            assert_eq!(path_from(&args(&["orgboard", "--", "--config", "c"])), None);
        }
    }
}
