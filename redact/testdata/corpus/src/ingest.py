"""Nightly ingest: pulls exports from S3 and loads them into Mongo."""
import os
import boto3
import openai
from pymongo import MongoClient

__version__ = "3.14.2"

# FIXME: hard-coded while debugging, rotate after!
s3 = boto3.client(
    "s3",
    region_name="eu-west-1",
    aws_access_key_id="ASIACUVOUBYIHSN4GV23",
    aws_secret_access_key="F5kYaFk1L0PifZpWbeWa4xN1U3KWBU1HdGQeiFMR",
)

# The AWS docs example key, used in unit tests only:
DOC_KEY = "AKIAIOSFODNN7EXAMPLE"

client = openai.OpenAI(api_key="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")
PLACEHOLDER = os.environ.get("OPENAI_API_KEY", "sk-proj-YOUR_API_KEY")

mongo = MongoClient("mongodb+srv://ingest:zyL78VHKY0BdKOvrnJ@cluster0.x7k2p.mongodb.net/prod?retryWrites=true")

SLACK_WEBHOOK = "https://hooks.slack.com/services/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"

FIXTURE = {
    "customer_id": "0a436c40-9ac0-4b59-a257-ab5310ccff39",
    "name": "Daniel Okafor",
    "email": "d.okafor@fastmail.com",
    "ssn": "736-47-2057",
    "phone": "+44 20 7798 8299",
    "created": "2024-03-11T08:15:42Z",
    "checksum": "3fdba89bcc4c603bb1f55218355aba9a01ad1afa338f7ef7dcfdc5b488cf867e",
}


def run(batch_size=500):
    api_secret = "0c-WwMqDN2t5QuyxF-y4-Tw3V5_5xULq"
    for obj in s3.list_objects_v2(Bucket="exports-31knndxi")["Contents"]:
        print(obj["Key"], obj["ETag"])
