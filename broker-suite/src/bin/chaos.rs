//! `chaos [--messages N] [--faults F] [--seed S] [--broker rabbitmq|embedded|both]
//! [--cluster] [--in-flight N] [--json]`: see `stompkit_broker_suite::chaos`. The default is
//! `--broker both`; `--cluster` alone runs only the cluster. Exits non-zero when a run failed
//! a check (a lost message among them) or could not run.

use std::io::Write as _;
use std::process::ExitCode;

use stompkit_broker_suite::chaos::{ChaosConfig, ChaosReport, Target, run};

struct Args {
    messages: u64,
    faults: u32,
    seed: u64,
    in_flight: usize,
    targets: Vec<Target>,
    json: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        messages: 10_000,
        faults: 10,
        seed: 1,
        in_flight: 256,
        targets: vec![Target::Rabbitmq, Target::Embedded],
        json: false,
    };
    let mut cluster = false;
    let mut broker_given = false;
    let mut rest = std::env::args().skip(1);
    while let Some(arg) = rest.next() {
        let mut value = || rest.next().ok_or(format!("{arg} takes a value"));
        match arg.as_str() {
            "--messages" => {
                args.messages = value()?.parse().map_err(|e| format!("--messages: {e}"))?
            }
            "--faults" => args.faults = value()?.parse().map_err(|e| format!("--faults: {e}"))?,
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--in-flight" => {
                args.in_flight = value()?.parse().map_err(|e| format!("--in-flight: {e}"))?;
            }
            "--broker" => {
                broker_given = true;
                args.targets = match value()?.as_str() {
                    "rabbitmq" => vec![Target::Rabbitmq],
                    "embedded" => vec![Target::Embedded],
                    "both" => vec![Target::Rabbitmq, Target::Embedded],
                    other => return Err(format!("--broker rabbitmq|embedded|both, not `{other}`")),
                };
            }
            "--cluster" => cluster = true,
            "--json" => args.json = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if cluster {
        // `--cluster` alone runs only the cluster; with `--broker`, after those.
        if !broker_given {
            args.targets.clear();
        }
        args.targets.push(Target::Cluster);
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("chaos: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chaos: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut reports: Vec<ChaosReport> = Vec::new();
    let mut failed = false;
    for target in &args.targets {
        let mut config = ChaosConfig::new(*target, args.messages, args.faults);
        config.seed = args.seed;
        config.in_flight = args.in_flight;
        eprintln!(
            "chaos: {} messages, {} faults, seed {}, against {target}",
            args.messages, args.faults, args.seed
        );
        match runtime.block_on(run(config)) {
            Ok(report) => {
                failed |= !report.failures().is_empty();
                // With --json the table goes to stderr, for a person watching.
                if args.json {
                    eprintln!("{}", report.table());
                } else {
                    let _ = writeln!(std::io::stdout().lock(), "{}", report.table());
                }
                reports.push(report);
            }
            Err(e) => {
                eprintln!("chaos against {target}: {e}");
                failed = true;
            }
        }
    }
    if args.json {
        let _ = writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(&reports).unwrap_or_default()
        );
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
