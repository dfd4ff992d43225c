"""The harness every suite shares: strategies by name, streams, one run_one, one results row, reports."""
