//! A human-readable summary of a GGUF file (`mlxn gguf inspect`).

use std::fmt::Write;

use super::GgufFile;

/// Longest metadata value shown before it is cut (chat templates run to
/// kilobytes).
const MAX_VALUE_CHARS: usize = 120;

/// Metadata (long arrays and strings abbreviated) and a table of tensors
/// with their type, shape and size.
pub fn describe(file: &GgufFile) -> String {
    let mut s = String::new();
    let data_bytes: u64 = file.tensors().iter().map(|t| t.n_bytes).sum();
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        "GGUF v{}, {} bytes, alignment {}, {} metadata keys, {} tensors ({} of data)",
        file.version(),
        file.file_len(),
        file.alignment(),
        file.metadata().count(),
        file.tensors().len(),
        human_bytes(data_bytes),
    );
    let _ = writeln!(s, "\nmetadata:");
    for (key, value) in file.metadata() {
        let shown = abbreviate(&value.to_string());
        let _ = writeln!(s, "  {key:<40} {:<8} {shown}", value.value_type());
    }
    let _ = writeln!(s, "\ntensors:");
    let name_width = file
        .tensors()
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        s,
        "  {:<name_width$}  {:<6}  {:<24}  {:>10}",
        "name", "type", "shape", "size"
    );
    for t in file.tensors() {
        let shape = format!("{:?}", t.dims);
        let _ = writeln!(
            s,
            "  {:<name_width$}  {:<6}  {:<24}  {:>10}",
            t.name,
            t.ggml_type.name(),
            shape,
            human_bytes(t.n_bytes)
        );
    }
    s
}

fn abbreviate(text: &str) -> String {
    if text.chars().count() <= MAX_VALUE_CHARS {
        return text.replace('\n', "\\n");
    }
    let head: String = text.chars().take(MAX_VALUE_CHARS).collect();
    format!(
        "{}… ({} chars)",
        head.replace('\n', "\\n"),
        text.chars().count()
    )
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match UNITS.get(unit) {
        Some(&"B") | None => format!("{n} B"),
        Some(u) => format!("{value:.1} {u}"),
    }
}
