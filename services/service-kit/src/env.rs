//! Reading typed configuration values from environment variables.

use std::{collections::HashMap, fmt::Display, str::FromStr, time::Duration};

use anyhow::{Context, Result, anyhow};

/// A source of variables: the process environment, or a fixed set in tests.
pub struct Vars(HashMap<String, String>);

impl Vars {
    /// The process environment, read once.
    pub fn from_env() -> Self {
        Self(std::env::vars().collect())
    }

    /// A fixed set of variables.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// The variable's value, or `default` when it is unset or empty.
    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_owned()
    }

    /// The variable parsed as `T`, or `default` when it is unset or empty.
    ///
    /// # Errors
    /// When the variable is set but does not parse as `T`.
    pub fn parse<T>(&self, name: &str, default: T) -> Result<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(name) {
            Some(value) => value
                .parse()
                .map_err(|e| anyhow!("{e}"))
                .with_context(|| format!("{name}={value:?} is not valid")),
            None => Ok(default),
        }
    }

    /// A duration given in milliseconds.
    ///
    /// # Errors
    /// When the variable is set but is not a whole number.
    pub fn millis(&self, name: &str, default: Duration) -> Result<Duration> {
        let default = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
        Ok(Duration::from_millis(self.parse(name, default)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_or_blank_variables_fall_back_to_the_default() {
        let vars = Vars::from_pairs([("BLANK", "  ")]);
        assert_eq!(vars.string("UNSET", "x"), "x");
        assert_eq!(vars.string("BLANK", "x"), "x");
        assert_eq!(vars.parse("BLANK", 7_u32).unwrap(), 7);
        assert_eq!(
            vars.millis("UNSET", Duration::from_secs(2)).unwrap(),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn set_values_are_trimmed_and_parsed() {
        let vars = Vars::from_pairs([("N", " 42 ")]);
        assert_eq!(vars.string("N", "x"), "42");
        assert_eq!(vars.parse::<u32>("N", 1).unwrap(), 42);
        assert_eq!(
            vars.millis("N", Duration::ZERO).unwrap(),
            Duration::from_millis(42)
        );
    }

    #[test]
    fn a_malformed_value_is_an_error_naming_the_variable() {
        let vars = Vars::from_pairs([("WORKERS", "ten")]);
        let err = vars.parse::<u32>("WORKERS", 1).unwrap_err();
        assert!(format!("{err:#}").contains("WORKERS=\"ten\""), "{err:#}");
    }
}
