//! The `keyfront` command-line tool: a client of the same core as the module.

use clap::{Parser, Subcommand};

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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
