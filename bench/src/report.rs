//! The results: rows with their raw per-round numbers, medians, targets, and the markdown
//! and JSON forms written to bench/results/.

use std::fmt::Write as _;

/// One measurement of one row in one round.
#[derive(Clone, Debug, Default)]
pub struct Round {
    pub ops: u64,
    pub seconds: f64,
    /// TPM commands on the wire during the measurement (`None`: not observable).
    pub commands: Option<u64>,
    /// Rate divided by the baseline's rate in the same round.
    pub ratio: Option<f64>,
    /// Rate divided by the raw TPM rate of the row's TPM operation in the same round.
    pub limit_ratio: Option<f64>,
    pub failures: u64,
    /// Modelled TPM time of the commands on the wire (under a latency profile).
    pub model_ms: Option<f64>,
}

impl Round {
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ops as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Milliseconds per operation: a sample's duration, or a batch's time per operation.
    pub fn ms_per_op(&self) -> Option<f64> {
        (self.ops > 0).then(|| self.seconds * 1000.0 / self.ops as f64)
    }

    pub fn model_ms_per_op(&self) -> Option<f64> {
        self.model_ms
            .filter(|_| self.ops > 0)
            .map(|m| m / self.ops as f64)
    }

    pub fn commands_per_op(&self) -> Option<f64> {
        self.commands
            .filter(|_| self.ops > 0)
            .map(|c| c as f64 / self.ops as f64)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Ran,
    NotAvailable(String),
    Failed(String),
}

/// What the issue asks of a row.
#[derive(Clone, Copy, Debug, Default)]
pub struct Target {
    pub min_ratio: Option<f64>,
    /// Minimum rate over the raw TPM rate of the same operation (`Round::limit_ratio`).
    pub min_limit_ratio: Option<f64>,
    pub max_commands: Option<f64>,
    pub zero_failures: bool,
}

#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub status: Status,
    pub rounds: Vec<Round>,
    pub target: Target,
    pub notes: String,
    /// An existing stack we compare with: its failures are findings, not bench failures.
    pub peer: bool,
    /// What the row left in the TPM after releasing (or exiting), when it did.
    pub leftovers: Vec<String>,
    /// TPM commands per operation counted in a pass of their own, through the wire tap,
    /// for rows timed without the tap in the path.
    pub counted_commands: Option<f64>,
    /// Under a latency profile: the modelled time of the least a TPM must do for one
    /// operation (a handshake: one Sign or RSA_Decrypt).
    pub floor_ms: Option<f64>,
}

impl Row {
    pub fn new(name: impl Into<String>, target: Target) -> Row {
        Row {
            name: name.into(),
            status: Status::Ran,
            rounds: Vec::new(),
            target,
            notes: String::new(),
            peer: false,
            leftovers: Vec::new(),
            counted_commands: None,
            floor_ms: None,
        }
    }

    pub fn not_available(name: impl Into<String>, reason: impl Into<String>) -> Row {
        let mut row = Row::new(name, Target::default());
        row.status = Status::NotAvailable(reason.into());
        row
    }

    pub fn fail(&mut self, reason: impl Into<String>) {
        if self.status == Status::Ran {
            self.status = Status::Failed(reason.into());
        }
    }

    pub fn ran(&self) -> bool {
        self.status == Status::Ran && !self.rounds.is_empty()
    }

    pub fn median_rate(&self) -> Option<f64> {
        median(self.rounds.iter().map(Round::rate).collect())
    }

    pub fn median_ratio(&self) -> Option<f64> {
        median(self.rounds.iter().filter_map(|r| r.ratio).collect())
    }

    pub fn median_commands(&self) -> Option<f64> {
        if self.counted_commands.is_some() {
            return self.counted_commands;
        }
        median(
            self.rounds
                .iter()
                .filter_map(Round::commands_per_op)
                .collect(),
        )
    }

    pub fn median_limit_ratio(&self) -> Option<f64> {
        median(self.rounds.iter().filter_map(|r| r.limit_ratio).collect())
    }

    pub fn median_ms(&self) -> Option<f64> {
        median(self.rounds.iter().filter_map(Round::ms_per_op).collect())
    }

    pub fn median_model_ms(&self) -> Option<f64> {
        median(
            self.rounds
                .iter()
                .filter_map(Round::model_ms_per_op)
                .collect(),
        )
    }

    /// Milliseconds per operation over the floor's: 1.0 is all a TPM must do.
    pub fn times_floor(&self) -> Option<f64> {
        let floor = self.floor_ms.filter(|f| *f > 0.0)?;
        self.median_ms().map(|ms| ms / floor)
    }

    pub fn failures(&self) -> u64 {
        self.rounds.iter().map(|r| r.failures).sum()
    }

    /// "≥ 0.93 pass", "≤ 1 cmd miss", joined; empty without a target.
    fn verdict(&self) -> String {
        let mut parts = Vec::new();
        let ok = |b: bool| if b { "pass" } else { "**miss**" };
        if let Some(min) = self.target.min_ratio {
            match self.median_ratio().filter(|_| self.ran()) {
                Some(r) => parts.push(format!("≥ {min:.2} {}", ok(r >= min))),
                None => parts.push(format!("≥ {min:.2}")),
            }
        }
        if let Some(min) = self.target.min_limit_ratio {
            match self.median_limit_ratio().filter(|_| self.ran()) {
                Some(r) => parts.push(format!("≥ {min:.2} of raw {}", ok(r >= min))),
                None => parts.push(format!("≥ {min:.2} of raw")),
            }
        }
        if let Some(max) = self.target.max_commands {
            let label = if max == 1.0 { "cmd" } else { "cmds" };
            match self.median_commands().filter(|_| self.ran()) {
                // A command once per batch (a flush, a reload) is not a command per operation.
                Some(c) => parts.push(format!("≤ {max} {label} {}", ok(c <= max + 0.01))),
                None => parts.push(format!("≤ {max} {label}")),
            }
        }
        if self.target.zero_failures {
            if self.ran() {
                parts.push(format!("0 failures {}", ok(self.failures() == 0)));
            } else {
                parts.push("0 failures".into());
            }
        }
        parts.join("; ")
    }

    /// Records what the row left in the TPM after a release.
    pub fn left(&mut self, what: Option<String>) {
        if let Some(w) = what {
            self.leftovers.push(w);
        }
    }

    fn leftover_note(&self) -> String {
        match self.leftovers.first() {
            None => String::new(),
            Some(first) => format!(
                "; LEAK: left {first} loaded after release/exit in {} of its batches (flushed by the bench)",
                self.leftovers.len()
            ),
        }
    }

    fn status_note(&self) -> String {
        self.status_text() + &self.leftover_note()
    }

    fn status_text(&self) -> String {
        match &self.status {
            Status::Ran => self.notes.clone(),
            Status::NotAvailable(reason) => format!("n/a: {reason}"),
            Status::Failed(reason) if self.peer => format!("fails: {reason}"),
            Status::Failed(reason) => format!("FAILED: {reason}"),
        }
    }
}

/// Sets each row's ratio in `round` to its rate over the first row's (the baseline's) rate
/// in that round.
pub fn ratios_to_first(rows: &mut [&mut Row], round: usize) {
    let base = rows
        .first()
        .and_then(|r| r.rounds.get(round))
        .map(Round::rate)
        .filter(|r| *r > 0.0);
    let Some(base) = base else { return };
    for row in rows.iter_mut() {
        if let Some(r) = row.rounds.get_mut(round) {
            r.ratio = Some(r.rate() / base);
        }
    }
}

/// The non-empty notes, joined with "; ".
pub fn join_notes<S: AsRef<str>>(notes: impl IntoIterator<Item = S>) -> String {
    notes
        .into_iter()
        .filter(|s| !s.as_ref().is_empty())
        .map(|s| s.as_ref().to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Operations per second, ratio to a baseline row of the same round.
    Rate,
    /// Milliseconds and TPM commands per sample.
    Latency,
    /// Under a TPM latency profile: rate or sample time, the floor (what the modelled TPM
    /// must spend at least), the multiple of it, and the modelled TPM time on the wire.
    Model,
}

#[derive(Clone, Debug)]
pub struct Table {
    pub title: String,
    pub kind: Kind,
    /// What the ratio column divides by.
    pub baseline: String,
    /// The heading of a latency table's time column.
    pub sample_label: String,
    pub rows: Vec<Row>,
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

impl Table {
    pub fn new(title: impl Into<String>, kind: Kind, baseline: impl Into<String>) -> Table {
        Table {
            title: title.into(),
            kind,
            baseline: baseline.into(),
            sample_label: "ms to first signature".into(),
            rows: Vec::new(),
        }
    }

    /// Names a latency table's time column (default: ms to first signature).
    pub fn with_sample_label(mut self, label: impl Into<String>) -> Table {
        self.sample_label = label.into();
        self
    }

    pub fn markdown(&self) -> String {
        let mut s = format!("### {}\n\n", self.title);
        match self.kind {
            Kind::Rate => {
                let limits = self.rows.iter().any(|r| r.median_limit_ratio().is_some());
                let _ = writeln!(
                    s,
                    "| row | ops/s (median) | ratio to {} (median) |{} target | TPM cmds/op | notes |",
                    self.baseline,
                    if limits { " ratio to the raw TPM operation, same round (median) |" } else { "" }
                );
                s.push_str(if limits {
                    "|---|---:|---:|---:|---|---:|---|\n"
                } else {
                    "|---|---:|---:|---|---:|---|\n"
                });
                for r in &self.rows {
                    let ran = r.ran();
                    let limit = if !limits {
                        String::new()
                    } else if ran {
                        format!(" {} |", opt(r.median_limit_ratio(), 3))
                    } else {
                        " - |".into()
                    };
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} |{limit} {} | {} | {} |",
                        cell(&r.name),
                        if ran {
                            opt(r.median_rate(), 0)
                        } else {
                            "n/a".into()
                        },
                        if ran {
                            opt(r.median_ratio(), 3)
                        } else {
                            "-".into()
                        },
                        r.verdict(),
                        if ran {
                            opt(r.median_commands(), 2)
                        } else {
                            "-".into()
                        },
                        cell(&r.status_note())
                    );
                }
            }
            Kind::Latency => {
                let _ = writeln!(
                    s,
                    "| row | {} (median) | target | TPM cmds (median) | notes |",
                    self.sample_label
                );
                s.push_str("|---|---:|---|---:|---|\n");
                for r in &self.rows {
                    let ran = r.ran();
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | {} |",
                        cell(&r.name),
                        if ran {
                            opt(r.median_ms(), 1)
                        } else {
                            "n/a".into()
                        },
                        r.verdict(),
                        if ran {
                            opt(r.median_commands(), 0)
                        } else {
                            "-".into()
                        },
                        cell(&r.status_note())
                    );
                }
            }
            Kind::Model => {
                s.push_str(
                    "| row | ops/s (median) | ms per op (median) | floor ms | × floor | TPM cmds/op | modelled TPM ms/op | target | notes |\n",
                );
                s.push_str("|---|---:|---:|---:|---:|---:|---:|---|---|\n");
                for r in &self.rows {
                    let ran = r.ran();
                    let shown =
                        |v: Option<f64>, digits| if ran { opt(v, digits) } else { "-".into() };
                    let rate = r.rounds.iter().all(|x| x.ops > 1).then(|| r.median_rate());
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                        cell(&r.name),
                        if ran {
                            opt(rate.flatten(), 1)
                        } else {
                            "n/a".into()
                        },
                        shown(r.median_ms(), 1),
                        opt(r.floor_ms, 1),
                        shown(r.times_floor(), 2),
                        shown(r.median_commands(), 1),
                        shown(r.median_model_ms(), 1),
                        r.verdict(),
                        cell(&r.status_note())
                    );
                }
            }
        }
        s
    }

    pub fn json(&self) -> String {
        let rows: Vec<String> = self.rows.iter().map(row_json).collect();
        format!(
            "{{\"title\":{},\"kind\":{},\"baseline\":{},\"rows\":[{}]}}",
            json_str(&self.title),
            json_str(match self.kind {
                Kind::Rate => "rate",
                Kind::Latency => "latency",
                Kind::Model => "model",
            }),
            json_str(&self.baseline),
            rows.join(",")
        )
    }
}

fn json_num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x}"),
        _ => "null".into(),
    }
}

pub fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn row_json(r: &Row) -> String {
    let (status, reason) = match &r.status {
        Status::Ran => ("ran", String::new()),
        Status::NotAvailable(why) => ("n/a", why.clone()),
        Status::Failed(why) => ("failed", why.clone()),
    };
    let rounds: Vec<String> = r
        .rounds
        .iter()
        .map(|x| {
            format!(
                "{{\"ops\":{},\"seconds\":{},\"rate\":{},\"commands\":{},\"ratio\":{},\"limit_ratio\":{},\"model_ms\":{},\"failures\":{}}}",
                x.ops,
                x.seconds,
                json_num(Some(x.rate())),
                x.commands.map_or("null".into(), |c| c.to_string()),
                json_num(x.ratio),
                json_num(x.limit_ratio),
                json_num(x.model_ms),
                x.failures
            )
        })
        .collect();
    format!(
        "{{\"row\":{},\"status\":{},\"reason\":{},\"median_rate\":{},\"median_ratio\":{},\"median_limit_ratio\":{},\"median_commands_per_op\":{},\"median_ms\":{},\"floor_ms\":{},\"times_floor\":{},\"median_model_ms\":{},\"target\":{{\"min_ratio\":{},\"min_limit_ratio\":{},\"max_commands\":{},\"zero_failures\":{}}},\"notes\":{},\"rounds\":[{}]}}",
        json_str(&r.name),
        json_str(status),
        json_str(&reason),
        json_num(r.median_rate()),
        json_num(r.median_ratio()),
        json_num(r.median_limit_ratio()),
        json_num(r.median_commands()),
        json_num(r.median_ms()),
        json_num(r.floor_ms),
        json_num(r.times_floor()),
        json_num(r.median_model_ms()),
        json_num(r.target.min_ratio),
        json_num(r.target.min_limit_ratio),
        json_num(r.target.max_commands),
        r.target.zero_failures,
        json_str(&r.notes),
        rounds.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(ops: u64, seconds: f64) -> Round {
        Round {
            ops,
            seconds,
            ..Round::default()
        }
    }

    #[test]
    fn times_floor_is_ms_per_operation_over_the_floor() {
        let mut row = Row::new("r", Target::default());
        row.rounds = vec![round(10, 1.0), round(20, 1.0), round(5, 1.0)];
        assert_eq!(row.times_floor(), None);
        row.floor_ms = Some(50.0);
        // Medians: 100 ms per operation, twice the floor.
        assert_eq!(row.median_ms(), Some(100.0));
        assert_eq!(row.times_floor(), Some(2.0));
    }

    #[test]
    fn the_raw_limit_target_is_judged_on_the_limit_ratio() {
        let target = Target {
            min_limit_ratio: Some(0.9),
            ..Target::default()
        };
        let mut row = Row::new("r", target);
        row.rounds = vec![Round {
            limit_ratio: Some(0.95),
            ..round(1, 1.0)
        }];
        assert_eq!(row.verdict(), "≥ 0.90 of raw pass");
        row.rounds[0].limit_ratio = Some(0.5);
        assert_eq!(row.verdict(), "≥ 0.90 of raw **miss**");
    }
}
