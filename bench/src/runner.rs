//! `make bench`: sets up the bench, runs the sections, prints the tables and writes them
//! with the raw per-round numbers to bench/results/<timestamp>.md and .json.

use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::bench::{Bench, Settings};
use crate::operation::Op;
use crate::report::{json_str, Row, Status, Table};
use crate::{attest, model, platform, scale, startup, throughput, tls, token_scale};

pub fn run() -> Result<(), String> {
    let settings = Settings::from_env()?;
    eprintln!(
        "tpmkey-bench: {} rounds, {:.2} s per row and round (BENCH_ROUNDS, BENCH_SECONDS)",
        settings.rounds,
        settings.duration.as_secs_f64()
    );
    let bench = Bench::start(settings)?;
    let mut tables = Vec::new();
    if bench.settings.runs("throughput") {
        for op in Op::ALL {
            tables.push(throughput::run(&bench, op));
        }
    }
    if bench.settings.runs("startup") {
        tables.push(startup::run(&bench));
    }
    if bench.settings.runs("scale") {
        tables.push(scale::run(&bench));
    }
    if bench.settings.runs("token") {
        tables.push(token_scale::run(&bench));
    }
    if bench.settings.runs("platform") {
        tables.extend(platform::run(&bench));
    }
    if bench.settings.runs("attest") {
        tables.push(attest::run(&bench));
    }
    if bench.settings.runs("tls") {
        tables.push(tls::run(&bench));
    }
    if bench.settings.runs("model") {
        for profile in &bench.settings.profiles {
            tables.push(model::run(&bench, profile));
        }
    }
    let stamp = timestamp();
    let header = header(&bench, &stamp);
    let markdown = tables.iter().fold(header.clone(), |mut s, t| {
        s.push('\n');
        s.push_str(&t.markdown());
        s
    });
    println!("{markdown}");
    let dir = results_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let md = dir.join(format!("{stamp}.md"));
    let json = dir.join(format!("{stamp}.json"));
    std::fs::write(&md, &markdown).map_err(|e| format!("{}: {e}", md.display()))?;
    let tables_json: Vec<String> = tables.iter().map(Table::json).collect();
    let json_text = format!(
        "{{\"timestamp\":{},\"rounds\":{},\"seconds_per_row\":{},\"processes\":{},\"header\":{},\"tables\":[{}]}}\n",
        json_str(&stamp),
        bench.settings.rounds,
        bench.settings.duration.as_secs_f64(),
        bench.settings.processes,
        json_str(&header),
        tables_json.join(",")
    );
    std::fs::write(&json, json_text).map_err(|e| format!("{}: {e}", json.display()))?;
    eprintln!(
        "tpmkey-bench: wrote {} and {}",
        md.display(),
        json.display()
    );
    let failed: Vec<&Row> = tables
        .iter()
        .flat_map(|t| &t.rows)
        .filter(|r| !r.peer && matches!(r.status, Status::Failed(_)))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} row(s) failed: {}",
            failed.len(),
            failed
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

fn results_dir() -> PathBuf {
    std::env::var_os("BENCH_RESULTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results"))
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| "?".into())
}

fn header(bench: &Bench, stamp: &str) -> String {
    let s = &bench.settings;
    format!(
        "## tpmkey bench {stamp}\n\n\
         - {} rounds, {:.2} s per row and round, rows interleaved (A B C A B C ...); figures \
         are medians over rounds, ratios are taken inside each round\n\
         - TPM: {} on 127.0.0.1, every command counted by the wire tap; no resource manager \
         unless the row says tpm2-abrmd\n\
         - {}; {}; commit {}; {} CPUs\n\
         - knobs: BENCH_ROUNDS, BENCH_SECONDS, BENCH_PROCESSES, BENCH_TLS_THREADS, BENCH_ONLY \
         (throughput,startup,scale,token,platform,attest,tls,model), BENCH_PROFILE ({}), BENCH_MODEL_ROUNDS ({}), \
         BENCH_MODEL_SECONDS ({:.1})\n\
         - model tables: the wire tap holds each command for the profile's service time, one \
         command at a time (bench/profiles/*.profile, with their sources); figures there are \
         model time; × floor = ms per operation / the least the modelled TPM must spend on it\n\
         - n/a: the part is not built or not installed; FAILED: the part exists and the row broke\n",
        s.rounds,
        s.duration.as_secs_f64(),
        command_line("swtpm", &["--version"]),
        command_line("openssl", &["version"]),
        command_line("uname", &["-sr"]),
        command_line("git", &["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short", "HEAD"]),
        std::thread::available_parallelism().map_or(0, usize::from),
        s.profiles
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(","),
        s.model_rounds,
        s.model_duration.as_secs_f64(),
    )
}

/// UTC as YYYYMMDD-HHMMSS.
fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
