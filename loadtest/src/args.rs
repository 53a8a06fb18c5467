//! goose's command-line flags that this tool needs to know too: goose parses
//! them but does not hand them back.

/// The process's arguments.
pub fn all() -> Vec<String> {
    std::env::args().collect()
}

/// The last value given to one of goose's flags `names` (as `--flag value`
/// or `--flag=value`) in `args`.
pub fn value(args: &[String], names: &[&str]) -> Option<String> {
    let mut value = None;
    for (i, arg) in args.iter().enumerate() {
        for name in names {
            if let Some(v) = arg.strip_prefix(&format!("{name}=")) {
                value = Some(v.to_owned());
            } else if arg == name && i + 1 < args.len() {
                value = Some(args[i + 1].clone());
            }
        }
    }
    value
}

/// user-service's base URL: goose's `--host`, or its default.
pub fn users_host(args: &[String]) -> String {
    value(args, &["--host", "-H"])
        .unwrap_or_else(|| "http://localhost:8080".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// The first of goose's flags in `args` that set how long or how fast the
/// attack runs, which the capacity mode sets itself for each step.
pub fn pacing_flag(args: &[String]) -> Option<String> {
    const LONG: [&str; 5] = [
        "--run-time",
        "--throttle-requests",
        "--iterations",
        "--test-plan",
        "--startup-time",
    ];
    args.iter().skip(1).find_map(|arg| {
        let long = LONG
            .iter()
            .any(|flag| arg == flag || arg.starts_with(&format!("{flag}=")));
        // goose's short forms: -t (run time) and -s (startup time), with the
        // value apart or attached.
        let short = !arg.starts_with("--") && (arg.starts_with("-t") || arg.starts_with("-s"));
        (long || short).then(|| arg.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_flags_last_value_is_found_in_either_form() {
        let a = args(&[
            "loadtest",
            "--host",
            "http://a/",
            "-H=http://b",
            "--users",
            "4",
        ]);
        assert_eq!(users_host(&a), "http://b");
        assert_eq!(value(&a, &["--users", "-u"]).as_deref(), Some("4"));
        assert_eq!(value(&a, &["--run-time"]), None);
        assert_eq!(users_host(&args(&["loadtest"])), "http://localhost:8080");
        assert_eq!(
            value(&args(&["loadtest", "--users"]), &["--users"]),
            None,
            "a flag without its value"
        );
    }

    #[test]
    fn flags_that_pace_the_attack_are_found() {
        for (list, found) in [
            (&["loadtest", "--run-time", "60s"][..], Some("--run-time")),
            (&["loadtest", "--users", "8", "-t", "60s"][..], Some("-t")),
            (&["loadtest", "-t60s"][..], Some("-t60s")),
            (
                &["loadtest", "--throttle-requests=500"][..],
                Some("--throttle-requests=500"),
            ),
            (
                &[
                    "loadtest",
                    "--users",
                    "16",
                    "--hatch-rate",
                    "16",
                    "--host",
                    "http://x",
                ][..],
                None,
            ),
        ] {
            assert_eq!(pacing_flag(&args(list)).as_deref(), found, "{list:?}");
        }
    }
}
