//! `rkctl`: a kubectl-compatible command line for any Kubernetes API server.
//! It speaks to the cluster only through the `kube` client (never through the
//! server crates), prints what kubectl prints for the same objects (server-side
//! tables, the same `-o` formats and messages), and adds a live `get -w` view
//! that redraws one table in place on a terminal.
//!
//! The modules: `cli` (flags and dispatch), `client` (kubeconfig, requests,
//! errors), `discovery` (names to resources), `get` (tables and objects),
//! `printers` (alignment, json/yaml as kubectl writes them, colour),
//! `jsonpath` (templates, custom columns, sorting), `kustomize` (the `-k` subset), `model` (the pure
//! live-table model), `live` (watching and the terminal renderer), `apply`
//! (apply/create/delete), `streams` (exec, attach, port-forward), `verbs` (the remaining commands) and `config`
//! (kubeconfig editing).

mod apply;
mod cli;
mod client;
mod config;
mod discovery;
mod get;
mod jsonpath;
mod kustomize;
mod live;
mod model;
mod printers;
mod streams;
mod verbs;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // `rkctl get pods | head` must end quietly, as kubectl does, when the
    // reader goes away; Rust ignores SIGPIPE, so printing panics instead.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload().downcast_ref::<String>().map(String::as_str).unwrap_or_default();
        if msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info)
    }));
    let args = cli::Cli::parse();
    // One thread is plenty for a command line and starts fastest.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("building the tokio runtime");
    match rt.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(client::Error::Exit(code)) => ExitCode::from(code),
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
