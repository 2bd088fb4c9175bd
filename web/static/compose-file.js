// The own-compose-file form: a picked file is read into the textarea, so
// the form stays a plain urlencoded post (no multipart upload).
document.querySelectorAll('input[type=file][data-target]').forEach((input) => {
  const target = document.getElementById(input.dataset.target);
  if (!target) return;
  input.hidden = false;
  input.addEventListener('change', () => {
    const file = input.files && input.files[0];
    if (!file) return;
    file.text().then((text) => { target.value = text; });
  });
});
