//! QIDO-RS: each matching key, date ranges, limit and offset, includefield, the levels'
//! attributes in the DICOM JSON model, and an empty answer.

use super::support::{
    A, B, C, SERIES_UID, SOP_UID, STUDY_UID, owner_with_studies, search, text, uids,
};
use crate::both_backends;
use crate::helpers::dicom::PATIENT;
use crate::helpers::{Backend, TestApp};

async fn studies(app: &TestApp, key: &str, query: &str) -> Vec<String> {
    let sets = search(app, &format!("/dicomweb/studies{query}"), key).await;
    uids(&sets, STUDY_UID)
}

async fn studies_are_found_by_each_matching_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (key, _) = owner_with_studies(&app).await;
    assert_eq!(studies(&app, &key, "").await, [A, B, C]);
    for (query, expected) in [
        (format!("?StudyInstanceUID={B}"), vec![B]),
        (format!("?0020000D={A},{C}"), vec![A, C]),
        ("?PatientID=PID-ALPHA".into(), vec![A, C]),
        ("?00100020=PID-BRAVO".into(), vec![B]),
        ("?PatientID=PID-ALPH".into(), vec![]),
        ("?AccessionNumber=ACC-C".into(), vec![C]),
        ("?ModalitiesInStudy=MR".into(), vec![A, C]),
        ("?ModalitiesInStudy=CT".into(), vec![A, B]),
        ("?ModalitiesInStudy=US".into(), vec![]),
        ("?StudyDate=20260601".into(), vec![B]),
        ("?StudyDate=20260101-20260630".into(), vec![A, B]),
        ("?StudyDate=20260601-".into(), vec![B, C]),
        ("?StudyDate=-20260115".into(), vec![A]),
        ("?PatientID=PID-ALPHA&StudyDate=20260601-".into(), vec![C]),
        ("?limit=2".into(), vec![A, B]),
        ("?limit=2&offset=2".into(), vec![C]),
        ("?offset=3".into(), vec![]),
    ] {
        assert_eq!(studies(&app, &key, &query).await, expected, "{query}");
    }
}

async fn a_study_answers_with_the_study_level_attributes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (key, _) = owner_with_studies(&app).await;
    // Matched on one modality, the study still counts and lists all of its instances.
    let sets = search(
        &app,
        &format!("/dicomweb/studies?ModalitiesInStudy=MR&StudyInstanceUID={A}"),
        &key,
    )
    .await;
    assert_eq!(sets.len(), 1);
    let study = &sets[0];
    let mut tags: Vec<&str> = study
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    tags.sort_unstable();
    assert_eq!(
        tags,
        [
            "00080020", "00080030", "00080050", "00080056", "00080061", "00080090", "00081190",
            "00100010", "00100020", "00100030", "00100040", "0020000D", "00201206", "00201208",
        ],
        "the defaults of PS3.18 10.6.3.3.1 that the index holds"
    );
    assert_eq!(study["0020000D"]["vr"], "UI");
    assert_eq!(
        study["00080061"],
        serde_json::json!({"vr": "CS", "Value": ["CT", "MR"]})
    );
    assert_eq!(
        study["00201206"],
        serde_json::json!({"vr": "IS", "Value": [2]})
    );
    assert_eq!(
        study["00201208"],
        serde_json::json!({"vr": "IS", "Value": [4]})
    );
    assert_eq!(text(study, "00080020"), "20260115");
    assert_eq!(study["00100010"]["vr"], "PN");
    assert_eq!(
        text(study, "00100010"),
        PATIENT,
        "opened from the seal for the owner"
    );
    assert_eq!(text(study, "00100020"), "PID-ALPHA");
    assert_eq!(text(study, "00080050"), "ACC-A");
    assert_eq!(
        study["00100030"],
        serde_json::json!({"vr": "DA"}),
        "absent: no Value"
    );
    assert_eq!(
        text(study, "00081190"),
        app.url(&format!("/dicomweb/studies/{A}"))
    );
    assert!(
        study.get("00081030").is_none(),
        "StudyDescription only when asked"
    );

    for query in [
        "includefield=StudyDescription",
        "includefield=00081030",
        "includefield=all",
    ] {
        let sets = search(
            &app,
            &format!("/dicomweb/studies?StudyInstanceUID={A}&{query}"),
            &key,
        )
        .await;
        assert_eq!(text(&sets[0], "00081030"), "Synthetic study", "{query}");
        // Series and instance attributes differ within a study: never in a study's answer.
        for below in ["0020000E", "00080060", "00080018", "00200013"] {
            assert!(sets[0].get(below).is_none(), "{query}: {below}");
        }
    }
    let sets = search(
        &app,
        &format!("/dicomweb/studies?StudyInstanceUID={A}&includefield=SeriesInstanceUID"),
        &key,
    )
    .await;
    assert!(sets[0].get("0020000E").is_none(), "not a study attribute");
}

async fn series_and_instances_are_searched_within_a_study_and_across(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (key, _) = owner_with_studies(&app).await;
    let series = search(&app, &format!("/dicomweb/studies/{A}/series"), &key).await;
    assert_eq!(
        uids(&series, SERIES_UID),
        [format!("{A}.1"), format!("{A}.2")]
    );
    assert_eq!(text(&series[0], "00080060"), "CT");
    assert_eq!(
        series[0]["00201209"],
        serde_json::json!({"vr": "IS", "Value": [2]})
    );
    assert_eq!(
        series[0]["00200011"],
        serde_json::json!({"vr": "IS", "Value": [1]})
    );
    assert_eq!(text(&series[0], STUDY_UID), A);
    assert!(
        series[0].get("00100010").is_none(),
        "no patient at series level by default"
    );
    let mr = search(
        &app,
        &format!("/dicomweb/studies/{A}/series?Modality=MR"),
        &key,
    )
    .await;
    assert_eq!(uids(&mr, SERIES_UID), [format!("{A}.2")]);
    let one = search(
        &app,
        &format!("/dicomweb/studies/{A}/series?SeriesInstanceUID={A}.1"),
        &key,
    )
    .await;
    assert_eq!(uids(&one, SERIES_UID), [format!("{A}.1")]);
    let all_mr = search(&app, "/dicomweb/series?Modality=MR", &key).await;
    assert_eq!(
        uids(&all_mr, SERIES_UID),
        [format!("{A}.2"), format!("{C}.2")]
    );

    let path = format!("/dicomweb/studies/{A}/series/{A}.2/instances");
    let instances = search(&app, &path, &key).await;
    assert_eq!(
        uids(&instances, SOP_UID),
        [format!("{A}.2.1"), format!("{A}.2.2")]
    );
    let first = &instances[0];
    assert_eq!(text(first, "00080016"), "1.2.840.10008.5.1.4.1.1.2");
    assert_eq!(
        first["00200013"],
        serde_json::json!({"vr": "IS", "Value": [1]})
    );
    assert_eq!(text(first, SERIES_UID), format!("{A}.2"));
    assert_eq!(
        text(first, "00081190"),
        app.url(&format!(
            "/dicomweb/studies/{A}/series/{A}.2/instances/{A}.2.1"
        ))
    );
    let one = search(&app, &format!("{path}?SOPInstanceUID={A}.2.2"), &key).await;
    assert_eq!(uids(&one, SOP_UID), [format!("{A}.2.2")]);
    let in_study = search(
        &app,
        &format!("/dicomweb/studies/{A}/instances?limit=3"),
        &key,
    )
    .await;
    assert_eq!(in_study.len(), 3);
    let bravo = search(
        &app,
        "/dicomweb/instances?PatientID=PID-BRAVO&includefield=all",
        &key,
    )
    .await;
    assert_eq!(uids(&bravo, SOP_UID), [format!("{B}.1.1")]);
    assert_eq!(
        text(&bravo[0], "00100010"),
        PATIENT,
        "includefield=all opens the patient"
    );
    assert_eq!(text(&bravo[0], "00080020"), "20260601");
}

async fn a_search_that_finds_nothing_is_an_empty_list(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (key, _) = owner_with_studies(&app).await;
    for path in [
        "/dicomweb/studies?StudyInstanceUID=1.2.3".to_string(),
        "/dicomweb/studies/1.2.3/series".to_string(),
        format!("/dicomweb/studies/{A}/series?StudyInstanceUID={B}"),
        "/dicomweb/instances?AccessionNumber=NONE".to_string(),
        "/dicomweb/studies?limit=0".to_string(),
    ] {
        assert_eq!(
            search(&app, &path, &key).await,
            Vec::<serde_json::Value>::new(),
            "{path}"
        );
    }
}

both_backends!(
    studies_are_found_by_each_matching_key,
    a_study_answers_with_the_study_level_attributes,
    series_and_instances_are_searched_within_a_study_and_across,
    a_search_that_finds_nothing_is_an_empty_list,
);
