//! The committed header is exactly what cbindgen generates from the code.
//!
//! After changing the C API, regenerate it: `SHMBUS_BLESS=1 cargo test -p shmbus-ffi --test
//! header`, and commit `include/shmbus.h`.

use std::path::Path;

#[test]
fn committed_header_is_what_the_code_generates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen could not generate the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = dir.join("include/shmbus.h");
    if std::env::var_os("SHMBUS_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/shmbus.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/shmbus.h is stale: regenerate it with \
         `SHMBUS_BLESS=1 cargo test -p shmbus-ffi --test header` and commit it"
    );
}
