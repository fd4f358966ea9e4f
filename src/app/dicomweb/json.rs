//! The DICOM JSON model (PS3.18 F.2): a data set is an object keyed by the tag as eight
//! upper-case hex digits, in tag order, each attribute `{"vr": .., "Value": [..]}`; person
//! names are `{"Alphabetic": ..}`; IS values are numbers; an attribute without a value has
//! no `Value`.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};

/// An attribute the portal can answer with: what the index holds, and the counts and
/// URLs a search computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attr {
    pub tag: &'static str,
    pub keyword: &'static str,
    pub vr: &'static str,
}

macro_rules! attrs {
    ($($name:ident = $tag:literal $keyword:literal $vr:literal;)*) => {
        $(pub const $name: Attr = Attr { tag: $tag, keyword: $keyword, vr: $vr };)*
        /// Every attribute this module knows, for `includefield` by keyword or tag.
        pub const ALL: &[Attr] = &[$($name),*];
    };
}

attrs! {
    SOP_CLASS_UID = "00080016" "SOPClassUID" "UI";
    SOP_INSTANCE_UID = "00080018" "SOPInstanceUID" "UI";
    STUDY_DATE = "00080020" "StudyDate" "DA";
    STUDY_TIME = "00080030" "StudyTime" "TM";
    ACCESSION_NUMBER = "00080050" "AccessionNumber" "SH";
    INSTANCE_AVAILABILITY = "00080056" "InstanceAvailability" "CS";
    MODALITY = "00080060" "Modality" "CS";
    MODALITIES_IN_STUDY = "00080061" "ModalitiesInStudy" "CS";
    INSTITUTION_NAME = "00080080" "InstitutionName" "LO";
    REFERRING_PHYSICIAN_NAME = "00080090" "ReferringPhysicianName" "PN";
    STUDY_DESCRIPTION = "00081030" "StudyDescription" "LO";
    SERIES_DESCRIPTION = "0008103E" "SeriesDescription" "LO";
    RETRIEVE_URL = "00081190" "RetrieveURL" "UR";
    PATIENT_NAME = "00100010" "PatientName" "PN";
    PATIENT_ID = "00100020" "PatientID" "LO";
    PATIENT_BIRTH_DATE = "00100030" "PatientBirthDate" "DA";
    PATIENT_SEX = "00100040" "PatientSex" "CS";
    BODY_PART_EXAMINED = "00180015" "BodyPartExamined" "CS";
    STUDY_INSTANCE_UID = "0020000D" "StudyInstanceUID" "UI";
    SERIES_INSTANCE_UID = "0020000E" "SeriesInstanceUID" "UI";
    SERIES_NUMBER = "00200011" "SeriesNumber" "IS";
    INSTANCE_NUMBER = "00200013" "InstanceNumber" "IS";
    NUMBER_OF_STUDY_RELATED_SERIES = "00201206" "NumberOfStudyRelatedSeries" "IS";
    NUMBER_OF_STUDY_RELATED_INSTANCES = "00201208" "NumberOfStudyRelatedInstances" "IS";
    NUMBER_OF_SERIES_RELATED_INSTANCES = "00201209" "NumberOfSeriesRelatedInstances" "IS";
    NUMBER_OF_FRAMES = "00280008" "NumberOfFrames" "IS";
}

/// The patient attributes: opened from the seal only when one of them is asked for.
pub const PATIENT: &[Attr] = &[
    PATIENT_NAME,
    PATIENT_ID,
    PATIENT_BIRTH_DATE,
    PATIENT_SEX,
    ACCESSION_NUMBER,
    REFERRING_PHYSICIAN_NAME,
    INSTITUTION_NAME,
];

/// An attribute by keyword (`PatientID`) or tag (`00100020`, any case).
pub fn lookup(name: &str) -> Option<Attr> {
    ALL.iter()
        .find(|a| a.keyword == name || a.tag.eq_ignore_ascii_case(name))
        .copied()
}

/// One data set, kept in tag order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataSet(BTreeMap<&'static str, (Attr, Vec<Value>)>);

impl DataSet {
    /// Sets a text value; `None` or empty gives the attribute with no value.
    pub fn text(&mut self, attr: Attr, value: Option<&str>) {
        let values = match value.filter(|v| !v.is_empty()) {
            None => Vec::new(),
            Some(v) if attr.vr == "PN" => vec![json!({ "Alphabetic": v })],
            Some(v) => vec![Value::from(v)],
        };
        self.0.insert(attr.tag, (attr, values));
    }

    /// Sets a multi-valued text attribute.
    pub fn texts(&mut self, attr: Attr, values: &[String]) {
        self.0.insert(
            attr.tag,
            (
                attr,
                values.iter().map(|v| Value::from(v.as_str())).collect(),
            ),
        );
    }

    pub fn number(&mut self, attr: Attr, value: Option<i64>) {
        self.0.insert(
            attr.tag,
            (attr, value.map(Value::from).into_iter().collect()),
        );
    }

    /// Adds (or replaces with) the attributes of `other`.
    pub fn extend(&mut self, other: DataSet) {
        self.0.extend(other.0);
    }

    /// Keeps only the attributes `keep` says yes to.
    pub fn retain(&mut self, keep: impl Fn(Attr) -> bool) {
        self.0.retain(|_, (attr, _)| keep(*attr));
    }

    /// The values of `attr`, if set (tests and callers that read back).
    pub fn get(&self, attr: Attr) -> Option<&[Value]> {
        self.0.get(attr.tag).map(|(_, v)| v.as_slice())
    }
}

impl Serialize for DataSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (tag, (attr, values)) in &self.0 {
            let element = if values.is_empty() {
                json!({ "vr": attr.vr })
            } else {
                json!({ "vr": attr.vr, "Value": values })
            };
            map.serialize_entry(tag, &element)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_sets_follow_the_dicom_json_model() {
        let mut ds = DataSet::default();
        ds.text(STUDY_INSTANCE_UID, Some("1.2.3"));
        ds.text(PATIENT_NAME, Some("DOE^JANE"));
        ds.number(SERIES_NUMBER, Some(4));
        ds.text(STUDY_DATE, None);
        ds.texts(MODALITIES_IN_STUDY, &["CT".into(), "MR".into()]);
        let text = serde_json::to_string(&ds).unwrap();
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            json!({
                "00080020": {"vr": "DA"},
                "00080061": {"vr": "CS", "Value": ["CT", "MR"]},
                "00100010": {"vr": "PN", "Value": [{"Alphabetic": "DOE^JANE"}]},
                "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
                "00200011": {"vr": "IS", "Value": [4]},
            })
        );
        let at = |tag: &str| text.find(tag).unwrap();
        assert!(
            at("00080020") < at("00080061") && at("0020000D") < at("00200011"),
            "tag order"
        );
    }

    #[test]
    fn attributes_are_found_by_keyword_or_tag() {
        assert_eq!(lookup("PatientID"), Some(PATIENT_ID));
        assert_eq!(lookup("0020000d"), Some(STUDY_INSTANCE_UID));
        assert_eq!(lookup("patientid"), None);
    }
}
