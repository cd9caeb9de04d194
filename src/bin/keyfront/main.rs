//! The `keyfront` command-line tool: a client of the same core as the module.

use clap::{Parser, Subcommand};

mod bench;

#[derive(Parser)]
#[command(name = "keyfront", version, about = "keyfront PKCS#11 provider: administration tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the configured slots and the state of their tokens.
    Slots,
    /// Time PKCS#11 modules side by side through their C ABI (see docs/performance.md).
    Bench(bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(args) => match bench::run(args) {
            Ok(true) => std::process::ExitCode::SUCCESS,
            Ok(false) => std::process::ExitCode::FAILURE,
            Err(e) => {
                eprintln!("keyfront bench: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Slots => match keyfront::core::list_slots() {
            Ok(text) => {
                print!("{text}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("keyfront: {e}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}
