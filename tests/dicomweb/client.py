#!/usr/bin/env python3
"""Drives medport's DICOMweb endpoints with dicomweb-client, a client this project did not
write. Run it through scripts/dicomweb-client.sh, which installs the pinned client.

  client.py vendor
      Prints (JSON) the pydicom vendor test files the check uses, with what their headers
      say: path, sha256, study/series/SOP UIDs, PatientID, Modality, StudyDate. The caller
      uploads them (over tus) before running the check.

  client.py check --url URL --key KEY --manifest FILE [--store]
      With the files of FILE (the output of `vendor`) stored for the key's owner, checks
      with dicomweb-client: QIDO-RS search_for_studies by StudyInstanceUID, PatientID,
      ModalitiesInStudy and a StudyDate range; search_for_series and search_for_instances;
      WADO-RS retrieve_instance and retrieve_study, byte-identical to the files (SHA-256 of
      each part as the client decoded it); retrieve_study_metadata. `--store` first stores
      them with STOW-RS (store_instances); without it that step is skipped. Prints a JSON
      summary; exits 1 with the failed expectation on stderr otherwise.
"""

import argparse
import hashlib
import io
import json
import os
import sys

import pydicom
from pydicom.data import get_testdata_file

# Vendor files with distinct studies, patients, modalities and dates, in four transfer
# syntaxes (explicit and implicit little endian, JPEG 2000).
VENDOR = ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "rtplan.dcm", "rtdose.dcm"]


def fail(message):
    print(f"dicomweb-client check failed: {message}", file=sys.stderr)
    sys.exit(1)


def expect(condition, message):
    if not condition:
        fail(message)


def vendor():
    out = []
    for name in VENDOR:
        path = get_testdata_file(name)
        data = open(path, "rb").read()
        ds = pydicom.dcmread(io.BytesIO(data))
        out.append(
            {
                "name": name,
                "path": os.path.abspath(path),
                "sha256": hashlib.sha256(data).hexdigest(),
                "study": str(ds.StudyInstanceUID),
                "series": str(ds.SeriesInstanceUID),
                "sop": str(ds.SOPInstanceUID),
                "patient_id": str(ds.PatientID),
                "modality": str(ds.Modality),
                "study_date": str(ds.StudyDate),
            }
        )
    json.dump(out, sys.stdout, indent=1)
    print()


def value(dataset_json, tag):
    """The first value of `tag` in a DICOM JSON data set (a person name as text)."""
    values = dataset_json.get(tag, {}).get("Value", [])
    if not values:
        return None
    first = values[0]
    return first.get("Alphabetic") if isinstance(first, dict) else first


def studies(found):
    return sorted(value(ds, "0020000D") for ds in found)


class SentParts:
    """Keeps the bodies of the multipart requests the client sends (STOW-RS), split into
    parts at their boundary, as the server receives them."""

    def __init__(self, client):
        self.bodies = []
        client._session.hooks["response"].append(self.keep)

    def keep(self, response, *args, **kwargs):
        request = response.request
        if request.method == "POST" and request.headers.get("content-type", "").startswith("multipart/related"):
            self.bodies.append((request.headers["content-type"], request.body))

    def digests(self):
        out = []
        for content_type, body in self.bodies:
            boundary = content_type.split("boundary=", 1)[1].split(";", 1)[0].strip('"')
            delimiter = b"--" + boundary.encode()
            for chunk in body.split(delimiter)[1:]:
                if chunk.startswith(b"--"):
                    break
                headers, _, payload = chunk.partition(b"\r\n\r\n")
                expect(payload.endswith(b"\r\n"), "a part ends with CRLF before the delimiter")
                out.append(hashlib.sha256(payload[:-2]).hexdigest())
        return out


class RawParts:
    """Keeps the multipart responses the client receives, so the bytes of each part can
    be compared with the files; the parts are split by the client's own decoder."""

    def __init__(self, client):
        self.client = client
        self.responses = []
        client._session.hooks["response"].append(self.keep)

    def keep(self, response, *args, **kwargs):
        if response.headers.get("content-type", "").startswith("multipart/related"):
            self.responses.append(response)

    def digests(self):
        out = []
        for response in self.responses:
            for part in self.client._decode_multipart_message(response, stream=False):
                out.append(hashlib.sha256(bytes(part)).hexdigest())
        self.responses = []
        return sorted(out)


def check(args):
    from dicomweb_client.api import DICOMwebClient

    files = json.load(open(args.manifest))
    client = DICOMwebClient(
        url=f"{args.url}/dicomweb",
        headers={"Authorization": f"Bearer {args.key}"},
    )
    summary = {"stored": 0, "searches": 0, "retrieved": 0, "metadata": 0}

    if args.store:
        datasets = [pydicom.dcmread(f["path"]) for f in files]
        sent = SentParts(client)
        client.store_instances(datasets=datasets)
        summary["stored"] = len(datasets)
        # The client encodes each dataset itself, which need not reproduce the file byte
        # for byte: what must come back is what it sent, part for part, in order.
        digests = sent.digests()
        expect(len(digests) == len(files), f"{len(digests)} parts sent for {len(files)} files")
        for f, digest in zip(files, digests):
            f["sha256"] = digest

    def search(expected, **kwargs):
        found = client.search_for_studies(**kwargs)
        summary["searches"] += 1
        expect(studies(found) == sorted(expected), f"{kwargs}: {studies(found)} != {sorted(expected)}")
        return found

    every = [f["study"] for f in files]
    search(every)
    for f in files:
        found = search([f["study"]], search_filters={"StudyInstanceUID": f["study"]})
        expect(value(found[0], "00100020") == f["patient_id"], f"PatientID of {f['name']}")
        search([f["study"]], search_filters={"PatientID": f["patient_id"]})
        with_modality = [g["study"] for g in files if g["modality"] == f["modality"]]
        search(with_modality, search_filters={"ModalitiesInStudy": f["modality"]})
    in_2004 = [f["study"] for f in files if f["study_date"].startswith("2004")]
    expect(0 < len(in_2004) < len(files), "the files span more than 2004")
    search(in_2004, search_filters={"StudyDate": "20040101-20041231"})
    search([f["study"] for f in files if f["study_date"] <= "20031231"],
           search_filters={"StudyDate": "-20031231"})
    # Pages follow the server's order (by StudyInstanceUID).
    ordered = sorted(every)
    search(ordered[:2], limit=2)
    search(ordered[2:], offset=2)
    search([], search_filters={"PatientID": "NOBODY"})

    raw = RawParts(client)
    for f in files:
        series = client.search_for_series(study_instance_uid=f["study"])
        expect([value(s, "0020000E") for s in series] == [f["series"]], f"series of {f['name']}")
        instances = client.search_for_instances(
            study_instance_uid=f["study"], series_instance_uid=f["series"]
        )
        expect([value(i, "00080018") for i in instances] == [f["sop"]], f"instances of {f['name']}")
        summary["searches"] += 2

        instance = client.retrieve_instance(
            study_instance_uid=f["study"],
            series_instance_uid=f["series"],
            sop_instance_uid=f["sop"],
        )
        expect(str(instance.SOPInstanceUID) == f["sop"], f"retrieve_instance of {f['name']}")
        expect(raw.digests() == [f["sha256"]], f"bytes of {f['name']}")
        study = client.retrieve_study(study_instance_uid=f["study"])
        expect([str(d.SOPInstanceUID) for d in study] == [f["sop"]], f"retrieve_study of {f['name']}")
        expect(raw.digests() == [f["sha256"]], f"bytes of the study of {f['name']}")
        summary["retrieved"] += 1

        metadata = client.retrieve_study_metadata(study_instance_uid=f["study"])
        expect(len(metadata) == 1, f"metadata of {f['name']}")
        expect(value(metadata[0], "00080018") == f["sop"], f"metadata SOP of {f['name']}")
        expect(value(metadata[0], "00100020") == f["patient_id"], f"metadata PatientID of {f['name']}")
        summary["metadata"] += 1

    json.dump(summary, sys.stdout)
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("vendor")
    c = sub.add_parser("check")
    c.add_argument("--url", required=True)
    c.add_argument("--key", required=True)
    c.add_argument("--manifest", required=True)
    c.add_argument("--store", action="store_true", help="store the files with STOW-RS first")
    args = parser.parse_args()
    if args.command == "vendor":
        vendor()
    else:
        check(args)


if __name__ == "__main__":
    main()
