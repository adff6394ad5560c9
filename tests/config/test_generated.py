"""Files generated from the declarations must match them."""

from gptpipe.config import generate


def test_generated_files_up_to_date():
    assert generate.main(["--check"]) == 0
