//! tpmkey(1), generated from the command-line definition so that it cannot drift from it:
//! the global options and every subcommand (its about text, arguments, options and the
//! examples of its `--help`) are rendered as roff into the hand-written page
//! `cli/man/tpmkey.1.in` (description, JSON fields, exit status, environment, files).
//! `make install` and `make deb` run the hidden `tpmkey manpage` into target/man/tpmkey.1.

use clap::{Arg, Command};

const TEMPLATE: &str = include_str!("../man/tpmkey.1.in");

/// Text for roff: backslashes escaped, no line starting with a control character.
fn esc(s: &str) -> String {
    s.replace('\\', "\\e")
        .lines()
        .map(|l| {
            let l = l.replace('-', "\\-");
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Help text as paragraphs: blank lines become `.PP`, the rest flows.
fn paragraphs(s: &str) -> String {
    s.trim()
        .split("\n\n")
        .map(|p| esc(p.trim()))
        .collect::<Vec<_>>()
        .join("\n.PP\n")
}

fn value_names(arg: &Arg) -> String {
    match arg.get_value_names() {
        Some(names) => names
            .iter()
            .map(|n| format!("\\fI{}\\fR", esc(n)))
            .collect::<Vec<_>>()
            .join(" "),
        None => format!("\\fI{}\\fR", esc(&arg.get_id().as_str().to_uppercase())),
    }
}

fn shown(arg: &Arg) -> bool {
    !arg.is_hide_set() && !matches!(arg.get_id().as_str(), "help" | "version")
}

fn arguments(cmd: &Command, global: bool) -> String {
    let mut out = String::new();
    for arg in cmd
        .get_arguments()
        .filter(|a| shown(a) && a.is_global_set() == global)
    {
        let mut head = Vec::new();
        if let Some(s) = arg.get_short() {
            head.push(format!("\\fB\\-{s}\\fR"));
        }
        if let Some(l) = arg.get_long() {
            head.push(format!("\\fB\\-\\-{}\\fR", esc(l)));
        }
        let takes_value = arg.get_action().takes_values();
        let mut head = head.join(", ");
        if arg.is_positional() {
            head = value_names(arg);
        } else if takes_value {
            head = format!("{head} {}", value_names(arg));
        }
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| paragraphs(&h.to_string()))
            .unwrap_or_default();
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        out.push_str(&format!(".TP\n{head}\n{help}\n"));
        if takes_value && !defaults.is_empty() {
            out.push_str(&format!("(default: {})\n", esc(&defaults.join(", "))));
        }
    }
    out
}

fn usage(cmd: &Command, path: &str) -> String {
    let mut parts = vec![format!("\\fB{}\\fR", esc(path))];
    if cmd
        .get_arguments()
        .any(|a| shown(a) && !a.is_positional() && !a.is_global_set())
    {
        parts.push("[\\fIOPTIONS\\fR]".into());
    }
    for arg in cmd
        .get_arguments()
        .filter(|a| shown(a) && a.is_positional())
    {
        parts.push(if arg.is_required_set() {
            value_names(arg)
        } else {
            format!("[{}]", value_names(arg))
        });
    }
    if cmd.has_subcommands() {
        parts.push("\\fICOMMAND\\fR".into());
    }
    parts.join(" ")
}

fn commands(cmd: &Command, prefix: &str, out: &mut String) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let path = format!("{prefix} {}", sub.get_name());
        out.push_str(&format!(".SS \"{}\"\n{}\n", esc(&path), usage(sub, &path)));
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            out.push_str(&format!(".PP\n{}\n", paragraphs(&about.to_string())));
        }
        let args = arguments(sub, false);
        if !args.is_empty() {
            out.push_str(&format!(".PP\n.RS 4\n{args}.RE\n"));
        }
        if let Some(after) = sub.get_after_help() {
            out.push_str(&format!(
                ".PP\n.nf\n{}\n.fi\n",
                esc(after.to_string().trim())
            ));
        }
        commands(sub, &path, out);
    }
}

/// The whole page for the command line `cmd`.
pub fn render(cmd: &Command) -> String {
    let mut list = String::new();
    commands(cmd, "tpmkey", &mut list);
    TEMPLATE
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"))
        .replace("@GLOBAL_OPTIONS@\n", &arguments(cmd, true))
        .replace("@COMMANDS@\n", &list)
}
