"""The instances part."""
