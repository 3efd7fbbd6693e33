"""SCN Studio: `streamlit run app.py`. The pages are listed by studio.ui.app_pages (the home page,
studio/home.py, then pages/ in order), so the home page has a title of its own rather than "app"."""
import streamlit as st

from studio import ui

st.navigation(ui.app_pages()).run()
