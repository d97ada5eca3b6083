pytest_plugins = [
    "tests.fakes.openshock_fixtures",
    "tests.fakes.discord_fixtures",
    "tests.harness",
]
