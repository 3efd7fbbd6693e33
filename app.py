"""SCN Studio: `streamlit run app.py`. The pages are listed by studio_ui.app_pages (the home page,
home.py, then pages/ in order), so the home page has a title of its own rather than "app"."""
import streamlit as st

import studio_ui as ui

st.navigation(ui.app_pages()).run()
