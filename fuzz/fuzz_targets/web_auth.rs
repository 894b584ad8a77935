//! Fuzzes what a stranger can send to the authentication layer and what
//! an operator writes into a web config: arbitrary text as a web config
//! file (and through the secret masking of status pages), as an
//! `Authorization` header, and as a login body, form and JSON. None may
//! panic; a web config error names its file; basic credentials read back
//! as they were written.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = server::auth::login_credentials(true, data);
    let _ = server::auth::login_credentials(false, data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) = config::web::parse_web_config("web.yml", text, None) {
        assert_eq!(error.file, "web.yml");
        let _ = error.to_string();
    }
    let _ = config::mask::masked_yaml(text);
    let _ = server::auth::parse_authorization(text);
    // A user name without a colon and any password survive the trip
    // through a basic header.
    let (user, password) = text.split_once('\n').unwrap_or((text, ""));
    if !user.contains(':') {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        assert_eq!(
            server::auth::parse_authorization(&format!("Basic {encoded}")),
            Ok(server::auth::Presented::Basic {
                user: user.to_string(),
                password: password.to_string(),
            })
        );
    }
});
