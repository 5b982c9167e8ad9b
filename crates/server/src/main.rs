use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "etherhub",
    version,
    about = "Multi-protocol VPN server: virtual hubs, SecureNAT and WireGuard"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the VPN server (creates the embedded default config on first start)
    Server {
        /// Path of the config file (SoftEther's vpn_server.config format)
        #[arg(long, short, default_value = "vpn_server.config")]
        config: PathBuf,
    },
    /// Administer a server with vpncmd's syntax: etherhub cmd [host:port] /SERVER [/HUB:x] [/PASSWORD:x] [/CMD ...]
    #[command(disable_help_flag = true)]
    Cmd {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Server { config } => {
            use std::io::IsTerminal as _;
            tracing_subscriber::fmt()
                .with_target(false)
                // colour codes only for a terminal: logs in files stay greppable
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .init();
            if let Err(e) = etherhub_server::run(config) {
                eprintln!("etherhub: {e:#}");
                std::process::exit(1);
            }
        }
        Command::Cmd { args } => std::process::exit(etherhub_cli::run(args)),
    }
}
