//! Configuration errors: where a bad value came from (file, key, environment variable) and
//! what is wrong with it, as types, phrased for the person who edits the file.

use crate::secret::SecretError;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Everything wrong with a configuration, already phrased for the user by its `Display`
/// (one problem per line).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub Box<ConfigErrorKind>);

/// What went wrong, and where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    #[error("{file}: cannot read config file: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    /// A key hookd does not know, or a value of the wrong type, in plain words (see `plain`).
    #[error("{file}: key `{key}`: {message}")]
    Shape {
        file: String,
        key: String,
        message: String,
    },
    /// An environment variable's text could not be read as the value it sets.
    #[error("environment variable {var}: {problem}")]
    Variable { var: String, problem: Invalid },
    /// A value was read but is not acceptable.
    #[error(
        "{file}: key `{key}`{}: {problem}",
        var.as_ref().map(|v| format!(" (set by {v})")).unwrap_or_default()
    )]
    Value {
        file: String,
        key: String,
        /// The environment variable the value came from, when it did not come from the file.
        var: Option<String>,
        problem: Invalid,
    },
    /// More than one of the above, in the order found.
    #[error(
        "{} problems:{}",
        .0.len(),
        .0.iter().map(|e| format!("\n  {e}")).collect::<String>()
    )]
    Several(Vec<ConfigErrorKind>),
}

impl From<ConfigErrorKind> for ConfigError {
    fn from(kind: ConfigErrorKind) -> Self {
        ConfigError(Box::new(kind))
    }
}

impl ConfigError {
    /// What is wrong with the value, when the error is about one value.
    pub fn problem(&self) -> Option<&Invalid> {
        match &*self.0 {
            ConfigErrorKind::Variable { problem, .. } | ConfigErrorKind::Value { problem, .. } => {
                Some(problem)
            }
            _ => None,
        }
    }

    /// Each problem on its own.
    pub fn errors(&self) -> &[ConfigErrorKind] {
        match &*self.0 {
            ConfigErrorKind::Several(all) => all,
            one => std::slice::from_ref(one),
        }
    }
}

/// Every problem found so far: building goes on past a bad value, so that one run of
/// `check-config` reports them all rather than one per edit.
#[derive(Default)]
pub(super) struct Problems(Vec<ConfigErrorKind>);

impl Problems {
    /// Notes `error` (each of its problems).
    pub(super) fn add(&mut self, error: ConfigError) {
        match *error.0 {
            ConfigErrorKind::Several(all) => self.0.extend(all),
            one => self.0.push(one),
        }
    }

    /// The value, or `None` with its error noted.
    pub(super) fn ok<T>(&mut self, result: Result<T, ConfigError>) -> Option<T> {
        result.map_err(|e| self.add(e)).ok()
    }

    /// Notes every problem `other` found.
    pub(super) fn append(&mut self, mut other: Problems) {
        self.0.append(&mut other.0);
    }

    /// `value` when nothing was found, otherwise every problem. (A part that was refused,
    /// leaving `value` `None`, always noted why; were it not to, the result is still an
    /// error.)
    pub(super) fn finish<T>(self, value: Option<T>) -> Result<T, ConfigError> {
        match (self.into_error(), value) {
            (None, Some(value)) => Ok(value),
            (Some(e), _) => Err(e),
            (None, None) => Err(ConfigErrorKind::Several(Vec::new()).into()),
        }
    }

    /// The problems as one error, if there are any.
    pub(super) fn into_error(mut self) -> Option<ConfigError> {
        match self.0.len() {
            0 => None,
            1 => self.0.pop().map(ConfigError::from),
            _ => Some(ConfigErrorKind::Several(self.0).into()),
        }
    }

    /// Keeps only the problems `keep` accepts.
    pub(super) fn retain(&mut self, keep: impl Fn(&ConfigErrorKind) -> bool) {
        self.0.retain(keep);
    }
}

/// Why a value is refused.
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    #[error("must be at least 1")]
    Zero,
    #[error("must be between {0} and {1}")]
    OutOfRange(u64, u64),
    #[error("must be a positive number")]
    NotPositive,
    #[error("must be zero or a positive number")]
    Negative,
    #[error("must be between 0.0 and 1.0")]
    NotAFraction,
    #[error("is not a whole number")]
    NotWholeNumber,
    #[error("is too large")]
    TooLarge,
    #[error("`{0}` is not an address like 127.0.0.1:8080")]
    NotAnAddress(String),
    #[error("`{0}` is not an http(s) URL")]
    NotHttpUrl(String),
    #[error("{0}")]
    Connection(String),
    /// `store.kind` is sled while a `[postgres]` section is set.
    #[error("is \"sled\" (the default), but a [postgres] section is set: set kind = \"postgres\" to use it, or remove it")]
    PostgresUnused,
    /// Cluster mode with the generated default endpoint.
    #[error("cluster mode (store.kind = \"postgres\") needs its [[endpoints]] configured with their secrets, the same on every instance: a secret generated in one instance's data_dir would be unknown to the others")]
    ClusterNeedsEndpoints,
    #[error("`{value}` is not one of: {choices}")]
    NotOneOf {
        value: String,
        choices: &'static str,
    },
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("must be at least 16 characters")]
    ShortToken,
    #[error("must be an argon2 hash like `$argon2id$v=19$...` (see `hookd hash-password`)")]
    NotArgon2,
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// Two keys that exclude each other are both set (or neither of two required ones).
    #[error("set {0}")]
    Exclusive(&'static str),
    /// A key a section needs is missing.
    #[error("is required: {0}")]
    Required(&'static str),
    #[error("is the same as {0}: each token must open only what it is for")]
    SameToken(&'static str),
    #[error("needs at least one delay")]
    NoDelay,
    #[error(
        "`{0}` must be 1-64 characters of letters, digits, '-' or '_' (it is a URL path segment)"
    )]
    EndpointName(String),
    #[error("`{0}` is not an HTTP header name")]
    HeaderName(String),
    #[error("`{0}` is used by two endpoints")]
    DuplicateEndpoint(String),
    #[error("an empty list would drop every event; leave it out to accept all types")]
    NoEvents,
    #[error(
        "`{value}` is not a Fasten event type{}; the types are: {}",
        suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(),
        crate::simulate::EVENT_TYPES.join(", ")
    )]
    UnknownEvent {
        value: String,
        suggestion: Option<&'static str>,
    },
    #[error("`{admin}` takes the port of `listen` (`{listen}`{}): the receiver and the admin API each need their own address",
        .var.as_ref().map(|v| format!(", set by {v}")).unwrap_or_default())]
    SameAddress {
        admin: std::net::SocketAddr,
        listen: std::net::SocketAddr,
        /// The variable `listen` came from, when it did.
        var: Option<String>,
    },
    #[error("is inside data_dir ({}): a backup there would copy itself; choose a directory outside it", .0.display())]
    InsideDataDir(PathBuf),
    #[error("is above receive.body_budget_bytes ({0}): no body that size could ever be read")]
    AboveBudget(usize),
    #[error("processor = \"forward\" needs a [endpoints.forward] table with url and secret")]
    ForwardTableMissing,
    #[error("a forward table is set but processor = \"log\"")]
    ForwardWithLog,
    #[error("endpoint `{endpoint}` has no secret: set secrets, secrets_file, or {var}")]
    NoSecret { endpoint: String, var: String },
    #[error("`{0}` is the name hookd gives its own push events; choose another")]
    ReservedEndpoint(String),
    #[error("names no configured endpoint")]
    NoSuchEndpoint,
    #[error("`{0}` is not a host name (optionally `http://host[:port]`)")]
    NotAHost(String),
    #[error(
        "{0} is not a loopback address, and the admin API shows health data: set `admin.token` \
         (or HOOKD_ADMIN_TOKEN) or `admin.password_hash` first"
    )]
    PublicWithoutCredential(std::net::SocketAddr),
}

/// Why a cron schedule is refused.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "`{schedule}` has {fields} fields; a schedule has 6 (sec min hour day month weekday), \
         e.g. \"0 0 * * * *\" for hourly"
    )]
    Fields { schedule: String, fields: usize },
    #[error("`{schedule}` is not a valid cron expression ({reason})")]
    Cron { schedule: String, reason: String },
}

/// Where the values being built came from: the file, and which keys an environment variable
/// set instead. Turns a key and a problem into an error that names all of them.
pub(super) struct Origin {
    file: String,
    /// Key (e.g. `processing.workers`, `endpoints[0].secrets`) → the variable that set it.
    from_env: BTreeMap<String, String>,
}

impl Origin {
    /// Values from `file` (a path, or "(embedded defaults)").
    pub(super) fn new(file: String) -> Origin {
        Origin {
            file,
            from_env: BTreeMap::new(),
        }
    }

    /// Records that `var` set `key`, so errors about it name the variable.
    pub(super) fn set_by(&mut self, key: String, var: &str) {
        self.from_env.insert(key, var.to_owned());
    }

    /// The variable that set `key`, if one did.
    pub(super) fn var(&self, key: &str) -> Option<String> {
        self.from_env.get(key).cloned()
    }

    /// An error about the value at `key` (list items as `key[i]`).
    pub(super) fn err(&self, key: &str, problem: impl Into<Invalid>) -> ConfigError {
        // A list set by a variable names it for each of its items too.
        let var = self.from_env.get(key).or_else(|| {
            key.strip_suffix(']')
                .and_then(|k| k.rsplit_once('['))
                .and_then(|(list, _)| self.from_env.get(list))
        });
        ConfigErrorKind::Value {
            file: self.file.clone(),
            key: key.to_owned(),
            var: var.cloned(),
            problem: problem.into(),
        }
        .into()
    }
}
