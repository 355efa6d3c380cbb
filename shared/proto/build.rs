//! Generates the Rust types, clients and servers of every proto under `proto/`, with protox (a
//! pure-Rust proto compiler), so a machine with only cargo can build charla: no `protoc` needed.

use std::path::{Path, PathBuf};

/// The API packages compiled into this crate, each a folder under `proto/`.
const PACKAGES: &[&str] = &[
    "charla/contact/v1",
    "charla/conversation/v1",
    "charla/metrics/v1",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not baked in when it is compiled: a build script compiled in one
    // checkout and reused by another sharing (or copied with) its target directory would
    // otherwise read the first checkout's protos.
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    let mut files = Vec::new();
    for package in PACKAGES {
        files.extend(proto_files(&proto_root.join(package))?);
    }
    // Paths relative to this package: cargo records them as given, and absolute ones would tie
    // the build to one checkout (another clone sharing the target directory would then skip
    // regenerating after its protos changed).
    for file in files.iter().chain([&proto_root.join("google")]) {
        let relative = file.strip_prefix(&manifest_dir).unwrap_or(file);
        println!("cargo:rerun-if-changed={}", relative.display());
    }

    let mut compiler = protox::Compiler::new([&proto_root])?;
    compiler
        .include_source_info(true)
        .include_imports(true)
        .open_files(&files)?;
    let descriptors = compiler.file_descriptor_set();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // Server reflection serves this set, so clients need no .proto files of their own; HTTP/JSON
    // reads its routes from it. Encoded by protox rather than prost, which would drop the
    // custom options (`google.api.http`) that prost_types has no field for.
    std::fs::write(
        out_dir.join("charla_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}

/// Every `.proto` file below `dir`, in a stable order.
fn proto_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(proto_files(&path)?);
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
