//! The command line: kubectl's verbs and flags, and the dispatch to them.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use crate::apply::{self, ApplyArgs, DeleteArgs};
use crate::client::{ConnFlags, Result};
use crate::config::ConfigCmd;
use crate::get::{self, GetArgs};
use crate::{streams, verbs};

#[derive(Parser, Debug)]
#[command(name = "rkctl", version, about = "A kubectl-compatible command line with a live view: rkctl get pods -w")]
pub struct Cli {
    #[command(flatten)]
    pub conn: ConnFlags,
    /// Colour output: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, global = true, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub color: String,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Display one or many resources (`-w` for a live view).
    Get(GetArgs),
    /// Apply configuration by server-side apply (creates what is missing).
    Apply(ApplyArgs),
    /// Create resources from files or stdin.
    Create(ApplyArgs),
    /// Delete resources by name, file or label selector.
    Delete(DeleteArgs),
    /// Show details of a resource.
    Describe(verbs::DescribeArgs),
    /// Set a new size for a Deployment, ReplicaSet, StatefulSet or other scalable resource.
    Scale(verbs::ScaleArgs),
    /// Manage the rollout of a workload.
    Rollout {
        #[command(subcommand)]
        cmd: verbs::RolloutCmd,
    },
    /// Wait for a condition on one or many resources.
    Wait(verbs::WaitArgs),
    /// Print the logs of a container.
    Logs(verbs::LogsArgs),
    /// Run a command in a container.
    Exec(streams::ExecArgs),
    /// Attach to a process that is already running in a container.
    Attach(streams::AttachArgs),
    /// Forward local ports to a pod.
    PortForward(streams::PortForwardArgs),
    /// Print the resource types the server supports.
    ApiResources(verbs::ApiResourcesArgs),
    /// Print the API versions the server supports.
    ApiVersions,
    /// Describe the fields of a resource type.
    Explain(verbs::ExplainArgs),
    /// Modify kubeconfig files.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Mark a node unschedulable.
    Cordon { node: String },
    /// Mark a node schedulable.
    Uncordon { node: String },
    /// Cordon a node and evict its pods.
    Drain(verbs::DrainArgs),
    /// Print the client and server versions.
    Version,
    /// Print a shell completion script (bash, zsh or fish).
    Completion {
        #[arg(value_parser = ["bash", "zsh", "fish"])]
        shell: String,
    },
    /// Completion candidates for the words typed so far (used by the scripts).
    #[command(name = "__complete", hide = true)]
    Complete {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        words: Vec<String>,
    },
}

pub async fn run(cli: Cli) -> Result<()> {
    let conn = &cli.conn;
    match &cli.cmd {
        Cmd::Config { cmd } => return crate::config::run(conn, cmd),
        Cmd::Completion { shell } => {
            print!("{}", completion_script(shell));
            return Ok(());
        }
        Cmd::Complete { words } => return verbs::complete(conn, &Cli::command(), words).await,
        _ => {}
    }
    let ctx = conn.connect().await?;
    let color = cli.color.as_str();
    match &cli.cmd {
        Cmd::Get(a) => get::run(&ctx, a, color).await,
        Cmd::Apply(a) => apply::apply(&ctx, a, color).await,
        Cmd::Create(a) => apply::create(&ctx, a).await,
        Cmd::Delete(a) => apply::delete(&ctx, a).await,
        Cmd::Describe(a) => verbs::describe(&ctx, a).await,
        Cmd::Scale(a) => verbs::scale(&ctx, a).await,
        Cmd::Rollout { cmd } => verbs::rollout(&ctx, cmd).await,
        Cmd::Wait(a) => verbs::wait(&ctx, a).await,
        Cmd::Logs(a) => verbs::logs(&ctx, a).await,
        Cmd::Exec(a) => streams::exec(&ctx, a).await,
        Cmd::Attach(a) => streams::attach(&ctx, a).await,
        Cmd::PortForward(a) => streams::port_forward(&ctx, a).await,
        Cmd::ApiResources(a) => verbs::api_resources(&ctx, a).await,
        Cmd::ApiVersions => verbs::api_versions(&ctx).await,
        Cmd::Explain(a) => verbs::explain(&ctx, a).await,
        Cmd::Cordon { node } => verbs::cordon(&ctx, node, true).await,
        Cmd::Uncordon { node } => verbs::cordon(&ctx, node, false).await,
        Cmd::Drain(a) => verbs::drain(&ctx, a).await,
        Cmd::Version => verbs::version(&ctx).await,
        Cmd::Config { .. } | Cmd::Completion { .. } | Cmd::Complete { .. } => unreachable!("handled above"),
    }
}

/// Tiny scripts that ask `rkctl __complete` for candidates, so completion
/// knows the verbs, the flags, the server's resource types and object names.
fn completion_script(shell: &str) -> String {
    match shell {
        "bash" => "_rkctl() {\n  local IFS=$'\\n'\n  COMPREPLY=($(compgen -W \"$(rkctl __complete \"${COMP_WORDS[@]:1:COMP_CWORD}\" 2>/dev/null)\" -- \"${COMP_WORDS[COMP_CWORD]}\"))\n}\ncomplete -o default -F _rkctl rkctl\n".into(),
        // Quoted and with `(@)`, so the empty word being completed is kept.
        "zsh" => concat!(
            "#compdef rkctl\n",
            "_rkctl() {\n",
            "  local -a c\n",
            "  c=(${(f)\"$(rkctl __complete \"${(@)words[2,CURRENT]}\" 2>/dev/null)\"})\n",
            "  compadd -a c\n",
            "}\n",
            "# Sourced, this registers the function; autoloaded from $fpath, it completes.\n",
            "if [ \"$funcstack[1]\" = \"_rkctl\" ]; then _rkctl \"$@\"; else compdef _rkctl rkctl; fi\n",
        )
        .into(),
        // `string collect -a` keeps the empty word being completed.
        _ => "complete -c rkctl -f -a '(rkctl __complete (commandline -opc)[2..] (commandline -ct | string collect -a) 2>/dev/null)'\n".into(),
    }
}

/// Files named by `-f`: a path, a directory (its .yaml/.yml/.json files,
/// recursively with `-R`), or `-` for stdin.
pub fn expand_files(paths: &[PathBuf], recursive: bool) -> Result<Vec<PathBuf>> {
    fn walk(dir: &std::path::Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                if recursive {
                    walk(&p, recursive, out)?;
                }
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, recursive, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}
