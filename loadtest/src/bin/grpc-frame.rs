//! Writes the README's example CheckRequest as a gRPC frame, for `h2load -d FILE`.
//!
//! `grpc-frame OUT_FILE [RSA_PEM_KEY]`: with a key, the subject is a token signed with it
//! (RS256, kid `rsa-1`, issuer `https://idp.example.test`, audience `pdp`, valid for a day,
//! roles and MFA as the README's request asserts) instead of an asserted subject.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: grpc-frame OUT_FILE [RSA_PEM_KEY]");
        return ExitCode::from(2);
    };
    let mut request = pdp_loadtest::readme_request();
    if let Some(key_file) = args.next() {
        let token = match sign(&key_file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        if let Some(subject) = request.subject.as_mut() {
            *subject = pdp_proto::v1::Subject {
                token,
                ..Default::default()
            };
        }
    }
    match std::fs::write(&path, pdp_loadtest::grpc_frame(&request)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write `{path}`: {e}");
            ExitCode::from(1)
        }
    }
}

fn sign(key_file: &str) -> Result<String, String> {
    let pem = std::fs::read(key_file).map_err(|e| format!("cannot read `{key_file}`: {e}"))?;
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(&pem).map_err(|e| format!("`{key_file}`: {e}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = serde_json::json!({
        "iss": "https://idp.example.test", "aud": "pdp", "sub": "alice",
        "roles": ["ApplicationRole"], "amr": ["pwd", "mfa"],
        "iat": now, "auth_time": now, "exp": now + 86_400,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| e.to_string())
}
