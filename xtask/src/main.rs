//! `cargo xtask assets [OUT_DIR]`: writes the man pages (wgmesh.8 and one page per subcommand)
//! and the bash, zsh and fish completions, all generated from the clap definitions of
//! `wgmesh::cli::Cli`, so they never drift from the binary. Default OUT_DIR: target/assets.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::CommandFactory as _;
use clap_complete::Shell;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("assets") => {
            let out = args
                .next()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("target/assets"));
            assets(&out)
        }
        _ => anyhow::bail!("usage: cargo xtask assets [OUT_DIR]"),
    }
}

fn assets(out: &Path) -> anyhow::Result<()> {
    let man_dir = out.join("man");
    let comp_dir = out.join("completions");
    std::fs::create_dir_all(&man_dir).with_context(|| format!("creating {}", man_dir.display()))?;
    std::fs::create_dir_all(&comp_dir)
        .with_context(|| format!("creating {}", comp_dir.display()))?;
    let cmd = wgmesh::cli::Cli::command();
    write_man_pages(&cmd, &man_dir, "wgmesh")?;
    for (shell, file) in [
        (Shell::Bash, "wgmesh.bash"),
        (Shell::Zsh, "_wgmesh"),
        (Shell::Fish, "wgmesh.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut wgmesh::cli::Cli::command(), "wgmesh", &mut buf);
        std::fs::write(comp_dir.join(file), buf).with_context(|| format!("writing {file}"))?;
    }
    println!(
        "wrote man pages to {} and completions to {}",
        man_dir.display(),
        comp_dir.display()
    );
    Ok(())
}

/// wgmesh.8, then wgmesh-secret.8, wgmesh-secret-new.8, ... for every subcommand.
fn write_man_pages(cmd: &clap::Command, dir: &Path, name: &str) -> anyhow::Result<()> {
    let cmd = cmd
        .clone()
        .name(name.to_string())
        .bin_name(name.replace('-', " "));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("8")
        .render(&mut buf)?;
    std::fs::write(dir.join(format!("{name}.8")), buf)?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        write_man_pages(sub, dir, &format!("{name}-{}", sub.get_name()))?;
    }
    Ok(())
}
