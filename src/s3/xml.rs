//! A small XML writer for S3 responses (escaping through quick-xml), and request parsing.

use serde::de::DeserializeOwned;

use super::error::S3Error;

/// The S3 XML namespace.
pub const S3_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Builds an XML document element by element.
pub struct Xml {
    out: String,
}

impl Default for Xml {
    fn default() -> Self {
        Self::new()
    }
}

impl Xml {
    /// A document with the XML declaration.
    pub fn new() -> Self {
        Self {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
        }
    }

    /// Opens the root element with the S3 namespace.
    pub fn root(&mut self, tag: &str) {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push_str(" xmlns=\"");
        self.out.push_str(S3_NS);
        self.out.push_str("\">");
    }

    /// Opens an element.
    pub fn open(&mut self, tag: &str) {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
    }

    /// Closes an element.
    pub fn close(&mut self, tag: &str) {
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
    }

    /// `<tag>text</tag>`, with the text escaped.
    pub fn elem(&mut self, tag: &str, text: &str) {
        self.open(tag);
        self.out.push_str(&quick_xml::escape::escape(text));
        self.close(tag);
    }

    /// Appends markup as is (for elements with attributes).
    pub fn raw(&mut self, markup: &str) {
        self.out.push_str(markup);
    }

    /// The document.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Parses an XML request body, or answers `MalformedXML`.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, S3Error> {
    let text = std::str::from_utf8(body).map_err(|_| S3Error::malformed_xml())?;
    quick_xml::de::from_str(text).map_err(|_| S3Error::malformed_xml())
}

/// S3's timestamp format in XML: `2009-10-12T17:50:30.000Z`.
pub fn timestamp(ns: i128) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ns)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_default()
}

/// The HTTP date of a timestamp, for `Last-Modified`.
pub fn http_date(ns: i128) -> String {
    let secs = (ns / 1_000_000_000).max(0) as u64;
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text() {
        let mut x = Xml::new();
        x.elem("Key", "a<b>&\"c'");
        assert!(x
            .finish()
            .ends_with("<Key>a&lt;b&gt;&amp;&quot;c&apos;</Key>"));
    }

    #[test]
    fn formats_times() {
        assert_eq!(
            timestamp(1_255_369_830_123_000_000),
            "2009-10-12T17:50:30.123Z"
        );
        assert_eq!(
            http_date(1_255_369_830_123_000_000),
            "Mon, 12 Oct 2009 17:50:30 GMT"
        );
    }
}
