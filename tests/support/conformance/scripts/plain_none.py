"""run() does its work (logging) and returns nothing."""
import json
import logging

logger = logging.getLogger(__name__)


def init():
    pass


def run(data):
    logger.info("received %d rows", len(json.loads(data).get("data", [])))
