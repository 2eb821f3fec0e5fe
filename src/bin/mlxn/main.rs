//! `mlxn`: device information and benchmarks for mlx-native.

mod bench;
mod info;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "mlxn", about = "mlx-native: device information and benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the devices and their properties.
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Run benchmarks on the default device (MLXN_DEVICE=cpu|cuda:N to choose).
    Bench(bench::BenchArgs),
    /// GGUF files.
    Gguf {
        #[command(subcommand)]
        command: GgufCommand,
    },
}

#[derive(Subcommand)]
enum GgufCommand {
    /// Print a GGUF file's metadata and tensor table.
    Inspect { file: std::path::PathBuf },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info { json } => info::run(json),
        Command::Bench(args) => bench::run(&args),
        Command::Gguf {
            command: GgufCommand::Inspect { file },
        } => mlx_native::GgufFile::open(&file)
            .map(|f| print!("{}", mlx_native::formats::describe(&f))),
    };
    if let Err(e) = result {
        eprintln!("mlxn: {e}");
        std::process::exit(1);
    }
}
