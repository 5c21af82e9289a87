//! Configuration precedence: front end > environment > file > defaults. Its own test
//! binary with one test, because it sets process environment variables.

#![allow(clippy::unwrap_used, clippy::panic)]

use tpmkey::config::{Config, ObjectPolicy};

#[test]
fn front_end_beats_environment_beats_file() {
    let dir = std::env::temp_dir().join(format!("tpmkey-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tpmkey.conf");
    std::fs::write(
        &file,
        "# test\ntcti = swtpm:port=1111\nobjects = keep\nsession = off\nparent = 0x81000002\n",
    )
    .unwrap();
    // SAFETY (edition 2021: safe fn): this binary runs this single test, no other threads read the env.
    std::env::set_var("TPMKEY_CONF", &file);
    std::env::remove_var("TPMKEY_TCTI");
    std::env::remove_var("TPMKEY_OBJECTS");
    std::env::remove_var("TPMKEY_SESSION");

    let c = Config::load(&[]).unwrap();
    assert_eq!(
        (c.tcti.as_str(), c.objects, c.session, c.parent),
        (
            "swtpm:port=1111",
            ObjectPolicy::Keep,
            false,
            Some(0x8100_0002)
        )
    );

    std::env::set_var("TPMKEY_TCTI", "swtpm:port=2222");
    std::env::set_var("TPMKEY_OBJECTS", "per-operation");
    let c = Config::load(&[]).unwrap();
    assert_eq!(
        (c.tcti.as_str(), c.objects),
        ("swtpm:port=2222", ObjectPolicy::PerOperation)
    );

    let c = Config::load(&[("tcti", "mssim:port=3333"), ("objects", "auto")]).unwrap();
    assert_eq!(c.tcti, "mssim:port=3333");
    assert_eq!(c.object_policy(), ObjectPolicy::PerOperation);

    // A bad line names the file and the line; a named file that is missing is an error.
    std::fs::write(&file, "tcti = swtpm:port=1\nsesion = on\n").unwrap();
    let e = Config::load(&[]).unwrap_err().to_string();
    assert!(
        e.contains(&format!("{}, line 2", file.display())) && e.contains("unknown key \"sesion\""),
        "{e}"
    );
    std::env::set_var("TPMKEY_CONF", dir.join("missing.conf"));
    assert!(Config::load(&[]).is_err());
    std::env::set_var("TPMKEY_CONF", "/dev/null");
    std::env::remove_var("TPMKEY_TCTI");
    std::env::remove_var("TPMKEY_OBJECTS");
    assert_eq!(Config::load(&[]).unwrap().tcti, "device:/dev/tpmrm0");
    std::fs::remove_dir_all(&dir).ok();
}
