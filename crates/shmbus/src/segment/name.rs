//! Validated object names and their place in `/dev/shm`.

use std::fmt;

use crate::error::{Error, Result};

/// Environment variable that sets the default namespace.
pub(crate) const NAMESPACE_ENV: &str = "SHMBUS_NAMESPACE";
/// Prefix of every shmbus object in `/dev/shm`.
pub(crate) const PREFIX: &str = "shmbus";

const MAX_NAME: usize = 200;
const MAX_NAMESPACE: usize = 32;

/// A validated object name, with the namespace it lives in.
///
/// A name like `sensors.imu` is the POSIX object `/shmbus.sensors.imu` (visible as
/// `/dev/shm/shmbus.sensors.imu`); in namespace `test` it is `/shmbus@test.sensors.imu`.
/// Names are 1 to 200 characters of `A-Z a-z 0-9 . _ -` and do not start with `.`;
/// namespaces are 1 to 32 characters of `A-Z a-z 0-9 _ -`.
///
/// ```
/// use shmbus::Name;
/// let name = Name::with_namespace("sensors.imu", Some("test"))?;
/// assert_eq!(name.os_name(), "/shmbus@test.sensors.imu");
/// assert!(Name::with_namespace("../etc/passwd", None).is_err());
/// # Ok::<(), shmbus::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Name {
    name: String,
    namespace: Option<String>,
    os_name: String,
}

impl Name {
    /// Validates `name` in the namespace named by `SHMBUS_NAMESPACE` (none when unset or empty).
    pub fn new(name: &str) -> Result<Name> {
        let ns = std::env::var(NAMESPACE_ENV).ok().filter(|s| !s.is_empty());
        Name::with_namespace(name, ns.as_deref())
    }

    /// Validates `name` in `namespace` (`None`: the default, unnamed namespace).
    pub fn with_namespace(name: &str, namespace: Option<&str>) -> Result<Name> {
        validate_name(name)?;
        if let Some(ns) = namespace {
            validate_namespace(ns)?;
        }
        Ok(Name {
            name: name.to_owned(),
            namespace: namespace.map(str::to_owned),
            os_name: format!("/{}{}", dir_prefix(namespace), name),
        })
    }

    /// The name as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The namespace, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The POSIX shared-memory object name (`/shmbus.<name>`), as `shm_open` takes it.
    pub fn os_name(&self) -> &str {
        &self.os_name
    }

    /// The name as errors show it: `` `imu` ``, or `` `imu` in namespace `test` ``.
    pub(crate) fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("`{}` in namespace `{ns}`", self.name),
            None => format!("`{}`", self.name),
        }
    }
}

/// Shows the name as the user wrote it (without the namespace).
impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The prefix of `/dev/shm` entries in `namespace`: `shmbus.` or `shmbus@ns.`.
pub(crate) fn dir_prefix(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{PREFIX}@{ns}."),
        None => format!("{PREFIX}."),
    }
}

fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME {
        return bad("it is longer than 200 characters");
    }
    if name.starts_with('.') {
        return bad("it starts with `.`");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("it contains a character other than A-Z a-z 0-9 . _ -");
    }
    Ok(())
}

fn validate_namespace(ns: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidNamespace {
            namespace: ns.to_owned(),
            reason,
        })
    };
    if ns.is_empty() {
        return bad("it is empty");
    }
    if ns.len() > MAX_NAMESPACE {
        return bad("it is longer than 32 characters");
    }
    if !ns
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return bad("it contains a character other than A-Z a-z 0-9 _ -");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn maps_to_dev_shm_names() {
        assert_eq!(
            Name::with_namespace("a", None).unwrap().os_name(),
            "/shmbus.a"
        );
        assert_eq!(
            Name::with_namespace("a.b-c_d", Some("ns-1"))
                .unwrap()
                .os_name(),
            "/shmbus@ns-1.a.b-c_d"
        );
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", ".hidden", "a/b", "a b", "é", "a\0b", &"x".repeat(201)] {
            assert!(
                matches!(
                    Name::with_namespace(bad, None),
                    Err(Error::InvalidName { .. })
                ),
                "{bad:?} was accepted"
            );
        }
        assert!(Name::with_namespace(&"x".repeat(200), None).is_ok());
        for bad in ["", "a.b", "a/b", &"n".repeat(33)] {
            assert!(matches!(
                Name::with_namespace("ok", Some(bad)),
                Err(Error::InvalidNamespace { .. })
            ));
        }
    }

    proptest! {
        #[test]
        fn valid_names_fit_in_name_max(name in "[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}",
                                      ns in proptest::option::of("[A-Za-z0-9_-]{1,32}")) {
            let n = Name::with_namespace(&name, ns.as_deref()).unwrap();
            // NAME_MAX is 255 for the file under /dev/shm (without the leading `/`).
            prop_assert!(n.os_name().len() - 1 <= 255);
            prop_assert!(!n.os_name()[1..].contains('/'));
        }

        #[test]
        fn anything_else_is_rejected_not_panicking(name in ".*") {
            let ok = Name::with_namespace(&name, None).is_ok();
            let expected = !name.is_empty() && name.len() <= 200 && !name.starts_with('.')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            prop_assert_eq!(ok, expected);
        }
    }
}
