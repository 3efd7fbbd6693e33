"""The Streamlit frame of SCN Studio: the home page and the pieces every page shares. `app.py` at the
repository root is the app's only entry; pages/ holds the other pages."""
