def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives the system Chromium against a live `streamlit run`")
