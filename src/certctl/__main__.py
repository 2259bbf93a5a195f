from certctl.cli.main import app

app()
