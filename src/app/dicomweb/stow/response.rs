//! The store response (PS3.18 10.5.3): which instances were stored, which failed and why,
//! in the DICOM JSON model (PS3.18 F.2), and the HTTP status it calls for.

use serde_json::{Map, Value, json};

use crate::domain::DicomUid;

/// Failure Reason (0008,1197) values: PS3.4's Storage Service statuses, and 0xC409 (in
/// the "cannot understand" range) for an instance of another study than the path's, the
/// value other archives use for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// 0x0110: storage or the database failed.
    ProcessingFailure,
    /// 0x0122: not an instance of a storage SOP class (a DICOMDIR), or not a type the
    /// bucket takes.
    SopClassNotSupported,
    /// 0xA700: the instance does not fit (size limit, bucket quota, too many parts).
    OutOfResources,
    /// 0xA900: not DICOM Part 10 (also a file that only claims to be: an executable).
    NotDicom,
    /// 0xC000: the part or its header cannot be read.
    CannotUnderstand,
    /// 0xC409: its StudyInstanceUID is not the one in the request's path.
    OtherStudy,
}

impl FailureReason {
    pub fn code(self) -> u16 {
        match self {
            Self::ProcessingFailure => 0x0110,
            Self::SopClassNotSupported => 0x0122,
            Self::OutOfResources => 0xA700,
            Self::NotDicom => 0xA900,
            Self::CannotUnderstand => 0xC000,
            Self::OtherStudy => 0xC409,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInstance {
    pub sop_class_uid: Option<String>,
    pub sop_instance_uid: String,
    pub study_uid: String,
    pub series_uid: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedInstance {
    /// Known when the part's header could be read.
    pub sop_class_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub reason: FailureReason,
}

/// What became of one request.
#[derive(Debug, Clone, Default)]
pub struct StoreOutcome {
    pub study: Option<DicomUid>,
    pub stored: Vec<StoredInstance>,
    pub failed: Vec<FailedInstance>,
    /// The body stopped being a well-formed multipart body (the parts before it stand).
    pub malformed: Option<String>,
}

impl StoreOutcome {
    /// 200 when every part was stored; 202 when some were; with none stored, 400 for a
    /// body that is not well-formed and 409 when the instances themselves were refused.
    pub fn status(&self) -> u16 {
        let clean = self.failed.is_empty() && self.malformed.is_none();
        match (self.stored.is_empty(), clean) {
            (false, true) => 200,
            (false, false) => 202,
            (true, _) if self.malformed.is_some() || self.failed.is_empty() => 400,
            (true, _) => 409,
        }
    }

    /// The study every stored instance belongs to: the path's, or the one they share.
    fn study_uid(&self) -> Option<&str> {
        if let Some(study) = &self.study {
            return Some(study.as_str());
        }
        let first = self.stored.first()?.study_uid.as_str();
        self.stored
            .iter()
            .all(|s| s.study_uid == first)
            .then_some(first)
    }

    /// The response body (`application/dicom+json`); URLs start with `base`
    /// (`https://host`, no trailing slash).
    pub fn to_dicom_json(&self, base: &str) -> Value {
        let mut top = Map::new();
        if let Some(study) = self.study_uid() {
            top.insert(
                "00081190".into(),
                url(&format!("{base}/dicomweb/studies/{study}")),
            );
        }
        if !self.failed.is_empty() {
            let items = self.failed.iter().map(|f| {
                let mut item = Map::new();
                if let Some(class) = &f.sop_class_uid {
                    item.insert("00081150".into(), ui(class));
                }
                if let Some(sop) = &f.sop_instance_uid {
                    item.insert("00081155".into(), ui(sop));
                }
                item.insert(
                    "00081197".into(),
                    json!({"vr": "US", "Value": [f.reason.code()]}),
                );
                Value::Object(item)
            });
            top.insert("00081198".into(), sequence(items));
        }
        if !self.stored.is_empty() {
            let items = self.stored.iter().map(|s| {
                let mut item = Map::new();
                if let Some(class) = &s.sop_class_uid {
                    item.insert("00081150".into(), ui(class));
                }
                item.insert("00081155".into(), ui(&s.sop_instance_uid));
                item.insert(
                    "00081190".into(),
                    url(&format!(
                        "{base}/dicomweb/studies/{}/series/{}/instances/{}",
                        s.study_uid, s.series_uid, s.sop_instance_uid
                    )),
                );
                Value::Object(item)
            });
            top.insert("00081199".into(), sequence(items));
        }
        Value::Object(top)
    }
}

fn ui(value: &str) -> Value {
    json!({"vr": "UI", "Value": [value]})
}

fn url(value: &str) -> Value {
    json!({"vr": "UR", "Value": [value]})
}

fn sequence(items: impl Iterator<Item = Value>) -> Value {
    json!({"vr": "SQ", "Value": items.collect::<Vec<_>>()})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(study: &str) -> StoredInstance {
        StoredInstance {
            sop_class_uid: Some("1.2.840.10008.5.1.4.1.1.2".into()),
            sop_instance_uid: format!("{study}.1.1"),
            study_uid: study.into(),
            series_uid: format!("{study}.1"),
        }
    }

    fn failed(reason: FailureReason) -> FailedInstance {
        FailedInstance {
            sop_class_uid: None,
            sop_instance_uid: Some("1.2.3.9".into()),
            reason,
        }
    }

    #[test]
    fn the_status_follows_what_was_stored() {
        let mut o = StoreOutcome::default();
        assert_eq!(o.status(), 400, "no parts at all");
        o.failed.push(failed(FailureReason::NotDicom));
        assert_eq!(o.status(), 409);
        o.malformed = Some("cut off".into());
        assert_eq!(o.status(), 400);
        o.stored.push(stored("1.2.3"));
        assert_eq!(o.status(), 202);
        o.malformed = None;
        o.failed.clear();
        assert_eq!(o.status(), 200);
    }

    #[test]
    fn the_body_uses_the_ps3_18_tags_and_urls() {
        let mut o = StoreOutcome {
            stored: vec![stored("1.2.3")],
            failed: vec![failed(FailureReason::OtherStudy)],
            ..StoreOutcome::default()
        };
        let body = o.to_dicom_json("http://h");
        assert_eq!(
            body["00081190"]["Value"][0],
            "http://h/dicomweb/studies/1.2.3"
        );
        let item = &body["00081199"]["Value"][0];
        assert_eq!(item["00081155"]["Value"][0], "1.2.3.1.1");
        assert_eq!(
            item["00081190"]["Value"][0],
            "http://h/dicomweb/studies/1.2.3/series/1.2.3.1/instances/1.2.3.1.1"
        );
        let bad = &body["00081198"]["Value"][0];
        assert_eq!(bad["00081197"], json!({"vr": "US", "Value": [0xC409]}));
        assert!(bad.get("00081150").is_none(), "unknown class left out");
        // Instances of two studies and no study in the path: no study URL.
        o.stored.push(stored("1.2.4"));
        assert!(o.to_dicom_json("http://h").get("00081190").is_none());
    }
}
