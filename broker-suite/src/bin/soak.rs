//! `soak [--minutes M] [--rate R] [--fault-every SECS] [--seed S] [--samples FILE] [--json]`:
//! see `stompkit_broker_suite::soak`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use stompkit_broker_suite::soak::{SoakConfig, run};

fn main() -> ExitCode {
    let mut config = SoakConfig {
        duration: Duration::from_secs(60 * 60),
        rate: 50,
        fault_every: Duration::from_secs(30),
        sample_every: Duration::from_secs(5),
        warm_up: Duration::from_secs(120),
        seed: 1,
        samples_file: None,
    };
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<String, String> {
            args.next().ok_or(format!("{name} takes a value"))
        };
        let parsed: Result<(), String> = (|| {
            match arg.as_str() {
                "--minutes" => {
                    let m: f64 = value("--minutes")?
                        .parse()
                        .map_err(|e| format!("--minutes: {e}"))?;
                    config.duration = Duration::from_secs_f64(m * 60.0);
                    config.warm_up = config.warm_up.min(config.duration / 4);
                }
                "--rate" => {
                    config.rate = value("--rate")?
                        .parse()
                        .map_err(|e| format!("--rate: {e}"))?
                }
                "--fault-every" => {
                    config.fault_every = Duration::from_secs_f64(
                        value("--fault-every")?
                            .parse()
                            .map_err(|e| format!("--fault-every: {e}"))?,
                    );
                }
                "--seed" => {
                    config.seed = value("--seed")?
                        .parse()
                        .map_err(|e| format!("--seed: {e}"))?
                }
                "--samples" => config.samples_file = Some(value("--samples")?.into()),
                "--json" => json = true,
                other => return Err(format!("unknown argument `{other}`")),
            }
            Ok(())
        })();
        if let Err(e) = parsed {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("soak: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match runtime.block_on(run(config)) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let text = if json {
        serde_json::to_string_pretty(&report).unwrap_or_default()
    } else {
        report.table()
    };
    let _ = writeln!(out, "{text}");
    if report.failures().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
