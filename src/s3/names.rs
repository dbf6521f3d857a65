//! Bucket and key name rules.

use super::error::{S3Error, S3Result};

/// Checks S3's bucket naming rules: 3–63 characters of lowercase letters, digits, dots and
/// hyphens, starting and ending with a letter or digit, not an IP address, no `..`.
pub fn check_bucket(name: &str) -> S3Result<()> {
    let bytes = name.as_bytes();
    let ok = (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && !name.starts_with("xn--")
        && !name.ends_with("-s3alias");
    if ok {
        Ok(())
    } else {
        Err(
            S3Error::bad("InvalidBucketName", "The specified bucket is not valid.")
                .with_resource(name),
        )
    }
}

/// Checks that a key is at most 1024 bytes and holds no NUL (NUL separates the parts of our
/// metadata keys).
pub fn check_key(key: &str) -> S3Result<()> {
    if key.len() > 1024 {
        return Err(S3Error::bad("KeyTooLongError", "Your key is too long"));
    }
    if key.contains('\0') {
        return Err(S3Error::invalid_argument("Object keys may not contain NUL"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for good in ["abc", "my-bucket.2", "a".repeat(63).as_str(), "123"] {
            assert!(check_bucket(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "ABC",
            "a..b",
            "-abc",
            "abc-",
            "192.168.1.1",
            "a_b",
            &"a".repeat(64),
            "a.-b",
        ] {
            assert_eq!(
                check_bucket(bad).unwrap_err().code,
                "InvalidBucketName",
                "{bad}"
            );
        }
    }

    #[test]
    fn key_names() {
        assert!(check_key(&"k".repeat(1024)).is_ok());
        assert_eq!(
            check_key(&"k".repeat(1025)).unwrap_err().code,
            "KeyTooLongError"
        );
        assert!(check_key("../../etc/passwd").is_ok());
    }
}
