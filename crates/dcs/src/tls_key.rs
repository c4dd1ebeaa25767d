//! Encrypted client keys (`key_password`): rustls only loads plain keys, so a PKCS#8 `ENCRYPTED PRIVATE KEY`
//! block is decrypted in memory before it is handed over.

use pkcs8::der::pem::LineEnding;
use pkcs8::der::Document;
use pkcs8::EncryptedPrivateKeyInfo;

const BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// Returns the PEM with every encrypted PKCS#8 key replaced by its decrypted form; other blocks are untouched.
pub(crate) fn decrypt_if_needed(pem: &[u8], password: Option<&str>) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "not a PEM file".to_string())?;
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err("legacy OpenSSL-encrypted keys are not supported; convert it with \
                    `openssl pkcs8 -topk8` (PKCS#8 with a password works)"
            .into());
    }
    if !text.contains(BEGIN) {
        return Ok(pem.to_vec());
    }
    let password = password.ok_or("the key is encrypted but key_password is not set")?;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let end = after.find(END).ok_or("unterminated ENCRYPTED PRIVATE KEY block")? + END.len();
        let (_, doc) = Document::from_pem(&after[..end]).map_err(|e| format!("bad encrypted key: {e}"))?;
        let info = EncryptedPrivateKeyInfo::try_from(doc.as_bytes()).map_err(|e| format!("bad encrypted key: {e}"))?;
        let plain = info.decrypt(password).map_err(|e| format!("cannot decrypt the key with key_password: {e}"))?;
        let pem = plain.to_pem("PRIVATE KEY", LineEnding::LF).map_err(|e| format!("cannot re-encode the key: {e}"))?;
        out.push_str(&pem);
        rest = &after[end..];
    }
    out.push_str(rest);
    Ok(out.into_bytes())
}
